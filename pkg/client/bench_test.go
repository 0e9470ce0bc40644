package client

import (
	"context"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// One op: Send of a one-fragment message (fragmenting and one committed, fsync'd transaction).
func BenchmarkSend(b *testing.B) {
	n := newLocalNet(b, sphinx.DefaultGeometry())
	e := n.engine(b.TempDir(), nil)
	defer e.Close()
	data := randomData(10000)
	dst := Destination{Domain: "beta.example", Recipient: "bob"}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := e.Send(context.Background(), dst, data); err != nil {
			b.Fatal(err)
		}
	}
}

// One op: one lambda_P slot with a fragment due: pick it, build a SURB and a five-hop packet
// with the default geometry, commit the transmission (one fsync).
func BenchmarkRealPacket(b *testing.B) {
	n := newLocalNet(b, sphinx.DefaultGeometry())
	e := n.engine(b.TempDir(), func(c *Config) { c.RetryBudget = 1 << 30 })
	defer e.Close()
	v := n.view(e)
	if _, err := e.Send(context.Background(), Destination{Domain: "beta.example", Recipient: "bob"}, randomData(1000)); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for b.Loop() {
		now = now.Add(time.Hour) // past the deadline: the fragment is due again
		if _, real, err := e.realOrDrop(v, now); err != nil || !real {
			b.Fatalf("no fragment sent (%v)", err)
		}
	}
}

// One op: one lambda_P slot with a message of MaxFragments fragments all in flight (none due):
// the scan of the queue and a drop packet.
func BenchmarkSlotFullQueue(b *testing.B) {
	n := newLocalNet(b, sphinx.DefaultGeometry())
	e := n.engine(b.TempDir(), nil)
	defer e.Close()
	v := n.view(e)
	capacity := FragmentCapacity(n.params.Geometry)
	if _, err := e.Send(context.Background(), Destination{Domain: "beta.example", Recipient: "bob", Service: "loop"}, make([]byte, MaxFragments*capacity)); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for range MaxFragments {
		if _, real, err := e.realOrDrop(v, now); err != nil || !real {
			b.Fatalf("fragment not sent (%v)", err)
		}
	}
	for b.Loop() {
		if _, real, err := e.realOrDrop(v, now); err != nil || real {
			b.Fatalf("a slot with nothing due did not send a drop packet (%v)", err)
		}
	}
}
