// Package store keeps the directory authority's durable state in one bbolt file: node
// descriptors, approved node identities, the authority's own votes, and consensus documents with
// the signatures collected so far. Every write is committed (fsync'd) before it returns, so what
// the authority has served survives a restart (docs/spec/pki.md section 8).
package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

var (
	bucketDescriptors = []byte("descriptors") // identity || u64 epoch -> descriptor
	bucketApproved    = []byte("approved")    // identity -> empty
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

// Approve adds a node identity to the allow-list.
func (s *Store) Approve(id keys.IdentityPublicKey) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketApproved).Put(bytes.Clone(id[:]), nil) })
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
func (s *Store) Approved() ([]keys.IdentityPublicKey, error) {
	var out []keys.IdentityPublicKey
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketApproved).ForEach(func(k, _ []byte) error {
			id, err := keys.NewIdentityPublicKey(k)
			if err != nil {
				return fmt.Errorf("stored approval %x: %w", k, err)
			}
			out = append(out, id)
			return nil
		})
	})
	return out, err
}

// IsApproved reports whether id is on the stored allow-list.
func (s *Store) IsApproved(id keys.IdentityPublicKey) (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketApproved).Get(id[:]) != nil
		return nil
	})
	return ok, err
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
