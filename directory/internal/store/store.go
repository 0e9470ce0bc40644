// Package store keeps the directory authority's durable state in one bbolt file: node
// descriptors, node approvals (role and mail domains), the authority's own votes, and consensus documents with
// the signatures collected so far. Every write is committed (fsync'd) before it returns, so what
// the authority has served survives a restart (docs/spec/pki.md section 8).
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

var (
	bucketDescriptors = []byte("descriptors") // identity || u64 epoch -> descriptor
	bucketApproved    = []byte("approved")    // identity -> pki.Approval as JSON; empty: legacy, a mix
	bucketVotes       = []byte("votes")       // u64 epoch -> own vote
	bucketDocuments   = []byte("documents")   // u64 epoch -> signed document
)

// Store is the authority's database.
type Store struct {
	db *bolt.DB
}

// Open opens or creates the database at path. It fails after a second if another process
// holds it.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("store %s: %w (is another directory running on this data_dir?)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketDescriptors, bucketApproved, bucketVotes, bucketDocuments} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func epochKey(e pki.Epoch) []byte { return binary.BigEndian.AppendUint64(nil, uint64(e)) }

// PutDescriptor stores a parsed descriptor under (identity, epoch), replacing an earlier one.
func (s *Store) PutDescriptor(d *pki.Descriptor) error {
	b, err := d.Marshal()
	if err != nil {
		return err
	}
	k := append(bytes.Clone(d.Identity[:]), epochKey(d.Epoch)...)
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketDescriptors).Put(k, b) })
}

// Descriptors returns the stored descriptors of one node, oldest epoch first.
func (s *Store) Descriptors(id keys.IdentityPublicKey) ([]*pki.Descriptor, error) {
	var out []*pki.Descriptor
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDescriptors).Cursor()
		for k, v := c.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, v = c.Next() {
			d, err := pki.ParseDescriptor(v)
			if err != nil {
				return fmt.Errorf("stored descriptor %x: %w", k, err)
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// AllDescriptors returns every stored descriptor, by identity then epoch.
func (s *Store) AllDescriptors() ([]*pki.Descriptor, error) {
	var out []*pki.Descriptor
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDescriptors).ForEach(func(k, v []byte) error {
			d, err := pki.ParseDescriptor(v)
			if err != nil {
				return fmt.Errorf("stored descriptor %x: %w", k, err)
			}
			out = append(out, d)
			return nil
		})
	})
	return out, err
}

// PruneDescriptors deletes descriptors whose last Sphinx key is for an epoch before e.
func (s *Store) PruneDescriptors(e pki.Epoch) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDescriptors)
		var old [][]byte
		err := b.ForEach(func(k, v []byte) error {
			d, err := pki.ParseDescriptor(v)
			if err != nil || d.SphinxKeys[len(d.SphinxKeys)-1].Epoch < e {
				old = append(old, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		return deleteKeys(b, old)
	})
}

// Approval is one stored approval.
type Approval struct {
	Identity keys.IdentityPublicKey
	pki.Approval
	// Legacy marks an approval stored before approvals named a role (an empty value, as every
	// version before issue 13 wrote). It reads as a mix approval: a mix keeps working, and a
	// node never becomes a provider without an operator naming its domains
	// (docs/spec/pki.md section 9).
	Legacy bool
}

// ErrDomainTaken is returned by Approve for a mail domain already approved for another node.
var ErrDomainTaken = errors.New("mail domain already approved for another node")

// Approve adds a node to the allow-list with its role and domains, or replaces its approval. It
// refuses a domain that another stored approval names, in the same transaction, so two
// concurrent approvals cannot both take one domain.
func (s *Store) Approve(id keys.IdentityPublicKey, a pki.Approval) error {
	if err := a.Validate(); err != nil {
		return err
	}
	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketApproved)
		err := b.ForEach(func(k, v []byte) error {
			if bytes.Equal(k, id[:]) {
				return nil
			}
			o, err := decodeApproval(k, v)
			if err != nil {
				return err
			}
			for _, dom := range a.Domains {
				if slices.Contains(o.Domains, dom) {
					return fmt.Errorf("%s: %w: %s is approved as %s", dom, ErrDomainTaken, o.Identity, o.Approval)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return b.Put(bytes.Clone(id[:]), v)
	})
}

// decodeApproval reads one entry of the approved bucket.
func decodeApproval(k, v []byte) (Approval, error) {
	id, err := keys.NewIdentityPublicKey(k)
	if err != nil {
		return Approval{}, fmt.Errorf("stored approval %x: %w", k, err)
	}
	if len(v) == 0 {
		return Approval{Identity: id, Approval: pki.Approval{Role: pki.RoleMix}, Legacy: true}, nil
	}
	var a pki.Approval
	if err := json.Unmarshal(v, &a); err != nil {
		return Approval{}, fmt.Errorf("stored approval of %s: %w", id, err)
	}
	return Approval{Identity: id, Approval: a}, nil
}

// ErrNotApproved is returned by Remove for an identity that is not on the list.
var ErrNotApproved = errors.New("node identity is not approved")

// Remove deletes a node identity from the allow-list.
func (s *Store) Remove(id keys.IdentityPublicKey) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketApproved)
		if b.Get(id[:]) == nil {
			return fmt.Errorf("%s: %w", id, ErrNotApproved)
		}
		return b.Delete(id[:])
	})
}

// Approved returns the allow-list in key order.
func (s *Store) Approved() ([]Approval, error) {
	var out []Approval
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketApproved).ForEach(func(k, v []byte) error {
			a, err := decodeApproval(k, v)
			if err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	return out, err
}

// Approval returns the stored approval of id; ok is false when there is none.
func (s *Store) Approval(id keys.IdentityPublicKey) (a Approval, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketApproved).Get(id[:])
		if v == nil {
			return nil
		}
		ok = true
		a, err = decodeApproval(id[:], v)
		return err
	})
	return a, ok, err
}

func (s *Store) put(bucket []byte, e pki.Epoch, b []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(epochKey(e), b) })
}

func (s *Store) get(bucket []byte, e pki.Epoch) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bucket).Get(epochKey(e)))
		return nil
	})
	return out, err
}

// PutVote stores the authority's own vote for epoch e.
func (s *Store) PutVote(e pki.Epoch, b []byte) error { return s.put(bucketVotes, e, b) }

// Vote returns the stored vote for e, or nil.
func (s *Store) Vote(e pki.Epoch) ([]byte, error) { return s.get(bucketVotes, e) }

// PutDocument stores the signed document for epoch e (replacing it as signatures arrive).
func (s *Store) PutDocument(e pki.Epoch, b []byte) error { return s.put(bucketDocuments, e, b) }

// Document returns the stored signed document for e, or nil.
func (s *Store) Document(e pki.Epoch) ([]byte, error) { return s.get(bucketDocuments, e) }

// PruneEpochs deletes votes and documents for epochs before e.
func (s *Store) PruneEpochs(e pki.Epoch) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketVotes, bucketDocuments} {
			b := tx.Bucket(name)
			var old [][]byte
			c := b.Cursor()
			for k, _ := c.First(); k != nil && bytes.Compare(k, epochKey(e)) < 0; k, _ = c.Next() {
				old = append(old, bytes.Clone(k))
			}
			if err := deleteKeys(b, old); err != nil {
				return err
			}
		}
		return nil
	})
}

// deleteKeys deletes after iterating: deleting under a moving bbolt cursor can skip entries.
func deleteKeys(b *bolt.Bucket, ks [][]byte) error {
	for _, k := range ks {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
