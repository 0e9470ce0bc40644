package client

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/panoramix-mixnet/panoramix/pkg/sealmail"
)

// The mail the provider holds for the client arrives in chunks through retrieve-mail exchanges
// (docs/spec/client.md section 7.1). Chunks of one mail arrive contiguous and in order (the
// provider enqueues a mail's chunks in one transaction), so the store keeps at most one partial
// mail, and complete mails until the program has them (Config.ReadMail).
var (
	bucketMailChunks = []byte("mailchunks") // mail id || u32 index -> chunk data
	bucketMailReady  = []byte("mailready")  // mail id -> readyMail (JSON): complete, not yet handed over
	keyMailSeq       = []byte("mailseq")    // in bucketMeta: next retrieve-mail sequence number (u32)
	keyMailPartial   = []byte("mailpartial")
)

// partialMail is the mail whose chunks are arriving (in bucketMeta, keyMailPartial).
type partialMail struct {
	ID      sealmail.ID `json:"id"`
	Count   uint32      `json:"count"`
	Total   uint32      `json:"total"`
	Next    uint32      `json:"next"` // the index of the next chunk expected
	Started time.Time   `json:"started"`
}

// readyMail is a complete sealed mail that waits to be opened and handed to the program.
type readyMail struct {
	Count uint32    `json:"count"`
	Total uint32    `json:"total"`
	At    time.Time `json:"at"`
}

// chunkResult says what storeChunk did with a chunk.
type chunkResult int

const (
	chunkStored    chunkResult = iota // kept; the mail is not complete yet
	chunkComplete                     // kept, and it was the mail's last chunk
	chunkDuplicate                    // of a mail already complete and not yet handed over: ignored
	chunkOrphan                       // not the first chunk and no partial mail it continues: dropped
)

func mailChunkKey(id sealmail.ID, index uint32) []byte {
	return binary.BigEndian.AppendUint32(append(make([]byte, 0, sealmail.IDSize+4), id[:]...), index)
}

func putMailSeq(tx *bolt.Tx, seq uint32) error {
	return tx.Bucket(bucketMeta).Put(keyMailSeq, binary.BigEndian.AppendUint32(nil, seq))
}

func (s *store) mailSeq() (uint32, error) {
	var seq uint32
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta).Get(keyMailSeq); len(b) == 4 {
			seq = binary.BigEndian.Uint32(b)
		}
		return nil
	})
	return seq, err
}

// deletePrefix deletes every key of b that starts with prefix.
func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// storeChunk stores one chunk and the next retrieve-mail sequence number in one transaction
// (docs/spec/client.md sections 5 and 7.1), so that a chunk is kept exactly once across crashes:
// before the commit the provider still holds it, after it the next retrieve-mail deletes it
// there. A chunk that does not continue the partial mail (another id, another index, other
// totals) drops the partial mail first (dropped; only a broken provider sends that).
func (s *store) storeChunk(c *sealmail.Chunk, nextSeq uint32, now time.Time) (res chunkResult, dropped *partialMail, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := putMailSeq(tx, nextSeq); err != nil {
			return err
		}
		res, dropped, err = storeChunkTx(tx, c, now)
		return err
	})
	return res, dropped, err
}

func (x *exchangeTx) storeChunk(c *sealmail.Chunk, now time.Time) (chunkResult, *partialMail, error) {
	return storeChunkTx(x.tx, c, now)
}

// storeChunkTx is storeChunk inside the caller's transaction, without the sequence number: the
// engine stores all the chunks of one retrieve-mail exchange and the next sequence number in
// one transaction.
func storeChunkTx(tx *bolt.Tx, c *sealmail.Chunk, now time.Time) (res chunkResult, dropped *partialMail, err error) {
	res = chunkStored
	err = func() error {
		meta, chunks, ready := tx.Bucket(bucketMeta), tx.Bucket(bucketMailChunks), tx.Bucket(bucketMailReady)
		var p *partialMail
		if raw := meta.Get(keyMailPartial); raw != nil {
			p = &partialMail{}
			if _, err := getJSON(meta, keyMailPartial, p); err != nil {
				return err
			}
		}
		if p != nil && (p.ID != c.ID || p.Next != c.Index || p.Count != c.Count || p.Total != c.Total) {
			if err := deletePrefix(chunks, p.ID[:]); err != nil {
				return err
			}
			if err := meta.Delete(keyMailPartial); err != nil {
				return err
			}
			dropped, p = p, nil
		}
		if p == nil {
			if ready.Get(c.ID[:]) != nil {
				res = chunkDuplicate
				return nil
			}
			if c.Index != 0 {
				res = chunkOrphan
				return nil
			}
			p = &partialMail{ID: c.ID, Count: c.Count, Total: c.Total, Started: now}
		}
		if err := chunks.Put(mailChunkKey(c.ID, c.Index), c.Data); err != nil {
			return err
		}
		p.Next++
		if p.Next < p.Count {
			return putJSON(meta, keyMailPartial, p)
		}
		if err := meta.Delete(keyMailPartial); err != nil {
			return err
		}
		res = chunkComplete
		return putJSON(ready, c.ID[:], &readyMail{Count: p.Count, Total: p.Total, At: now})
	}()
	return res, dropped, err
}

// readyMails lists the complete mails not yet handed over, in id order.
func (s *store) readyMails() ([]sealmail.ID, error) {
	var out []sealmail.ID
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMailReady).ForEach(func(k, _ []byte) error {
			var id sealmail.ID
			copy(id[:], k)
			out = append(out, id)
			return nil
		})
	})
	return out, err
}

// countReady counts the complete mails not yet handed over, stopping at limit.
func (s *store) countReady(limit int) (n int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		n = countKeys(tx.Bucket(bucketMailReady), limit)
		return nil
	})
	return n, err
}

// sealedMail reassembles a complete mail's sealed bytes from its chunks.
func (s *store) sealedMail(id sealmail.ID) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		var r readyMail
		ok, err := getJSON(tx.Bucket(bucketMailReady), id[:], &r)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: mail %x", ErrUnknownMessage, id)
		}
		out = make([]byte, 0, r.Total)
		var n uint32
		c := tx.Bucket(bucketMailChunks).Cursor()
		for k, v := c.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, v = c.Next() {
			if binary.BigEndian.Uint32(k[sealmail.IDSize:]) != n {
				return fmt.Errorf("client store: mail %x lacks chunk %d", id, n)
			}
			out = append(out, v...)
			n++
		}
		if n != r.Count || len(out) != int(r.Total) {
			return fmt.Errorf("client store: mail %x has %d chunks and %d bytes, want %d and %d", id, n, len(out), r.Count, r.Total)
		}
		return nil
	})
	return out, err
}

// deleteMail forgets a complete mail and its chunks, in one transaction: the program has it,
// or it can never be opened.
func (s *store) deleteMail(id sealmail.ID) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := deletePrefix(tx.Bucket(bucketMailChunks), id[:]); err != nil {
			return err
		}
		return tx.Bucket(bucketMailReady).Delete(id[:])
	})
}

// MailState is what the engine holds of the mail it fetches through the link.
type MailState struct {
	// Partial is true while a mail's chunks are arriving: Have of Count are stored.
	Partial     bool
	Have, Count uint32
	// Waiting counts complete mails not yet handed to the program (ReadMail failed, or is
	// about to be called).
	Waiting int
}

func (s *store) mailState() (MailState, error) {
	var ms MailState
	err := s.db.View(func(tx *bolt.Tx) error {
		var p partialMail
		ok, err := getJSON(tx.Bucket(bucketMeta), keyMailPartial, &p)
		if err != nil {
			return err
		}
		if ok {
			ms.Partial, ms.Have, ms.Count = true, p.Next, p.Count
		}
		ms.Waiting = countKeys(tx.Bucket(bucketMailReady), 1<<20)
		return nil
	})
	return ms, err
}
