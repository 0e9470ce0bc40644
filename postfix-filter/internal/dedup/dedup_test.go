package dedup

import (
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestKeyDistinguishesFields(t *testing.T) {
	a := NewKey("a@x", "b@y", []byte("data"))
	for _, k := range []Key{
		NewKey("a@x", "b@y", []byte("datA")),
		NewKey("a@x", "b@z", []byte("data")),
		NewKey("", "a@xb@y", []byte("data")),
		NewKey("a@xb", "@y", []byte("data")),
	} {
		if k == a {
			t.Fatal("different envelopes or data gave the same key")
		}
	}
	if NewKey("a@x", "b@y", []byte("data")) != a {
		t.Fatal("the same input gave different keys")
	}
}

func TestStorePersistsAndPrunes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dedup.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	old := NewKey("a", "b", []byte("old"))
	now := time.Now()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := NewKey("a", "b", []byte{byte(i)})
			if err := s.Put(k, Record{Route: Mixnet, MessageID: "id", Time: now}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := s.Put(old, Record{Route: Reinjected, Time: now.Add(-10 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, ok, err := s.Lookup(NewKey("a", "b", []byte{7}))
	if err != nil || !ok || r.Route != Mixnet || r.MessageID != "id" {
		t.Fatalf("after reopening: %+v %v %v", r, ok, err)
	}
	if _, ok, _ := s.Lookup(NewKey("a", "b", []byte{99})); ok {
		t.Fatal("found a key never stored")
	}
	n, err := s.Prune(now.Add(-5 * 24 * time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("prune removed %d (%v), want 1", n, err)
	}
	if _, ok, _ := s.Lookup(old); ok {
		t.Fatal("pruned record still there")
	}
}

func TestOpenRefusesSecondUser(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dedup.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(path); err == nil {
		t.Fatal("a second Open of a store in use succeeded")
	}
}

func TestOutgoing(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "dedup.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := NewKey("a@x", "b@y", []byte("m"))
	now := time.Now()
	o := Outgoing{From: "a@x", Rcpt: "b@y", Subject: "s", MessageID: "<m@x>", Time: now}
	if err := s.PutMixnet(k, Record{Route: Mixnet, MessageID: "id1", Time: now}, o); err != nil {
		t.Fatal(err)
	}
	if r, ok, _ := s.Lookup(k); !ok || r.MessageID != "id1" {
		t.Fatal("PutMixnet did not record the copy")
	}
	got, ok, err := s.Outgoing("id1")
	if err != nil || !ok || got.From != o.From || got.Rcpt != o.Rcpt || got.Subject != o.Subject || !got.Time.Equal(now) {
		t.Fatalf("Outgoing: %+v %v %v", got, ok, err)
	}
	if err := s.DeleteOutgoing("id1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Outgoing("id1"); ok {
		t.Fatal("deleted outgoing record still there")
	}
	if err := s.PutMixnet(NewKey("a", "b", nil), Record{Route: Mixnet, MessageID: "old", Time: now.Add(-48 * time.Hour)},
		Outgoing{Time: now.Add(-48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Prune(now.Add(-24 * time.Hour)); err != nil || n != 2 {
		t.Fatalf("prune removed %d (%v), want the old copy and its outgoing record", n, err)
	}
}
