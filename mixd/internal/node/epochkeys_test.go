package node

import (
	"os"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/replay"
)

func TestEpochKeysRotationGraceAndRestart(t *testing.T) {
	dir := t.TempDir()
	clock, _ := pki.NewClock(10 * time.Second)
	grace := 2 * time.Second
	m, err := newEpochKeys(dir, clock, grace, 1000)
	if err != nil {
		t.Fatal(err)
	}
	e := pki.Epoch(1000)
	start := clock.Start(e)
	pub, err := m.update(start.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(pub) != KeysAhead+1 || pub[0].Epoch != e || pub[KeysAhead].Epoch != e+KeysAhead {
		t.Fatalf("published keys %+v", pub)
	}
	if c := m.candidates(start.Add(5 * time.Second)); len(c) != 1 || c[0].epoch != e {
		t.Fatalf("mid-epoch candidates %v", c)
	}
	if c := m.candidates(clock.End(e).Add(-time.Second)); len(c) != 2 || c[1].epoch != e+1 {
		t.Fatalf("late candidates: want current then next, got %d", len(c))
	}
	// Record a tag under epoch e's key, then move into epoch e+1.
	old := m.keys[e]
	if fresh, err := old.filter.Add(replay.Tag{1}); !fresh || err != nil {
		t.Fatal(fresh, err)
	}
	next := clock.Start(e + 1)
	if _, err := m.update(next.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if c := m.candidates(next.Add(time.Second)); len(c) != 2 || c[1] != old {
		t.Fatal("previous key not offered during the grace period")
	}
	// A restart inside the grace period finds the same keys (and the filter with the tag).
	if err := m.close(); err != nil {
		t.Fatal(err)
	}
	m2, _ := newEpochKeys(dir, clock, grace, 1000)
	pub2, err := m2.update(next.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if pub2[0].Key != pub[1].Key {
		t.Fatal("key for the current epoch changed across a restart")
	}
	prev := m2.keys[e]
	if prev == nil {
		t.Fatal("previous epoch's key not reloaded inside the grace period")
	}
	if fresh, _ := prev.filter.Add(replay.Tag{1}); fresh {
		t.Fatal("replay filter forgot a tag across the restart")
	}
	// After the grace period the key is wiped and its file gone; the filter stays one more.
	if _, err := m2.update(next.Add(grace + time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if !prev.wiped || prev.unwrapWith(func(*keys.SphinxPrivateKey) {}) {
		t.Fatal("expired key not wiped")
	}
	if _, err := os.Stat(m2.keyPath(e)); !os.IsNotExist(err) {
		t.Fatal("expired key file still on disk")
	}
	if _, err := os.Stat(m2.filterPath(e)); err != nil {
		t.Fatal("replay filter removed before packets admitted under it could finish")
	}
	if c := m2.candidates(next.Add(grace + time.Millisecond)); len(c) != 1 {
		t.Fatal("expired key still offered")
	}
	if _, err := m2.update(next.Add(2*grace + time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m2.filterPath(e)); !os.IsNotExist(err) {
		t.Fatal("replay filter not removed after two grace periods")
	}
	m2.close()
}
