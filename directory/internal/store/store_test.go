package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

func descriptor(t *testing.T, id *keys.IdentityPrivateKey, e pki.Epoch) *pki.Descriptor {
	t.Helper()
	link, _ := keys.GenerateLinkKey(rand.Reader)
	sk, _ := keys.GenerateSphinxKey(rand.Reader)
	d := &pki.Descriptor{Epoch: e, Identity: id.Public(), Link: link.Public(), Role: pki.RoleMix,
		Addresses: []string{"127.0.0.1:1"}, SphinxKeys: []pki.EpochKey{{Epoch: e, Key: sk.Public()}}}
	if err := d.Sign(id); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestStoreSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := keys.GenerateIdentityKey(rand.Reader)
	other, _ := keys.GenerateIdentityKey(rand.Reader)
	for _, e := range []pki.Epoch{5, 6, 7} {
		if err := s.PutDescriptor(descriptor(t, id, e)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutDescriptor(descriptor(t, other, 6)); err != nil {
		t.Fatal(err)
	}
	if err := s.Approve(id.Public(), pki.Approval{Role: pki.RoleMix}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutVote(6, []byte("vote")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDocument(6, []byte("doc")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil {
		t.Fatal("second Open of a database in use succeeded")
	}
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ds, err := s.Descriptors(id.Public())
	if err != nil || len(ds) != 3 || ds[0].Epoch != 5 || ds[2].Epoch != 7 {
		t.Fatalf("Descriptors = %d, %v", len(ds), err)
	}
	if a, ok, _ := s.Approval(id.Public()); !ok || a.Role != pki.RoleMix || a.Legacy {
		t.Errorf("approval after reopen: %+v, %v", a, ok)
	}
	if v, _ := s.Vote(6); !bytes.Equal(v, []byte("vote")) {
		t.Errorf("vote %q", v)
	}
	if d, _ := s.Document(6); !bytes.Equal(d, []byte("doc")) {
		t.Errorf("document %q", d)
	}
	if d, _ := s.Document(7); d != nil {
		t.Errorf("document 7 = %q, want none", d)
	}
	if err := s.PruneDescriptors(7); err != nil {
		t.Fatal(err)
	}
	all, _ := s.AllDescriptors()
	if len(all) != 1 || all[0].Epoch != 7 {
		t.Errorf("after prune: %d descriptors", len(all))
	}
	if err := s.PruneEpochs(7); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Vote(6); v != nil {
		t.Error("vote 6 not pruned")
	}
	if err := s.Remove(id.Public()); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(id.Public()); !errors.Is(err, ErrNotApproved) {
		t.Errorf("second Remove: %v", err)
	}
	if a, _ := s.Approved(); len(a) != 0 {
		t.Errorf("approved %v after remove", a)
	}
}
