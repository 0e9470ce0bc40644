package store

import (
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

func newID(t *testing.T) keys.IdentityPublicKey {
	t.Helper()
	k, err := keys.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func provider(t *testing.T, domains ...string) pki.Approval {
	t.Helper()
	a, err := pki.NewApproval(pki.RoleProvider, domains)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A store file written before approvals named a role (identity -> empty value, as every earlier
// version wrote) still opens; its approvals read as mix approvals, marked Legacy, until the
// operator approves the node again with a role.
func TestLegacyApprovalsReadAsMixes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	old, new := newID(t), newID(t)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("approved"))
		if err != nil {
			return err
		}
		return b.Put(old[:], nil)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, err := Open(path)
	if err != nil {
		t.Fatalf("a store file with legacy approvals does not open: %v", err)
	}
	defer s.Close()
	a, ok, err := s.Approval(old)
	if err != nil || !ok || !a.Legacy || a.Role != pki.RoleMix || len(a.Domains) != 0 {
		t.Fatalf("legacy approval = %+v, %v, %v; want a legacy mix approval", a, ok, err)
	}
	if err := s.Approve(new, provider(t, "beta.example")); err != nil {
		t.Fatal(err)
	}
	list, err := s.Approved()
	if err != nil || len(list) != 2 {
		t.Fatalf("Approved = %v, %v", list, err)
	}
	// Approving the legacy node again with a role replaces the legacy entry.
	if err := s.Approve(old, provider(t, "alpha.example")); err != nil {
		t.Fatal(err)
	}
	if a, _, _ := s.Approval(old); a.Legacy || a.Role != pki.RoleProvider || a.Domains[0] != "alpha.example" {
		t.Errorf("after re-approval: %+v", a)
	}
}

// Issue 13, finding 1: a domain approved for one node cannot be approved for another; the node
// itself may be approved again with it (and with fewer or more domains).
func TestApproveRefusesTakenDomain(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	beta, mallory := newID(t), newID(t)
	if err := s.Approve(beta, provider(t, "beta.example")); err != nil {
		t.Fatal(err)
	}
	err = s.Approve(mallory, provider(t, "beta.example", "mallory.example"))
	if !errors.Is(err, ErrDomainTaken) || !strings.Contains(err.Error(), beta.String()) {
		t.Fatalf("approving beta.example for a second node: %v, want ErrDomainTaken naming the first", err)
	}
	if _, ok, _ := s.Approval(mallory); ok {
		t.Fatal("the refused approval was stored")
	}
	if err := s.Approve(beta, provider(t, "beta.example", "mail.beta.example")); err != nil {
		t.Fatalf("re-approving the same node with its domain: %v", err)
	}
	if err := s.Approve(mallory, pki.Approval{Role: pki.RoleProvider}); err == nil {
		t.Fatal("a provider approval without a domain was stored")
	}
	if err := s.Approve(mallory, pki.Approval{Role: pki.RoleMix, Domains: []string{"x.example"}}); err == nil {
		t.Fatal("a mix approval with a domain was stored")
	}
	if err := s.Remove(beta); err != nil {
		t.Fatal(err)
	}
	if err := s.Approve(mallory, provider(t, "beta.example")); err != nil {
		t.Fatalf("the domain of a removed node: %v", err)
	}
}

// A damaged approval value is an error naming the node, not a silent approval.
func TestApprovalDamagedValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	id := newID(t)
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketApproved).Put(id[:], []byte(`{"role":"provider","domains":[]}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Approval(id); err == nil || !strings.Contains(err.Error(), id.String()) {
		t.Errorf("damaged approval: %v", err)
	}
	s.Close()
}
