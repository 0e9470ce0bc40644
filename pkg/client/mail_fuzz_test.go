package client

import (
	"bytes"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/panoramix-mixnet/panoramix/pkg/sealmail"
)

// Chunk sizes of FuzzMailChunks and its seeds (testdata/mailchunk): 64-byte chunk bodies carry
// 35 bytes of a sealed mail each.
const (
	fuzzChunkSize = 64
	fuzzMaxSealed = 1024
)

// FuzzMailChunks feeds four mail items, as a broken or hostile provider might send them, to the
// mail store (store.storeChunk, as handleMail calls it, after sealmail.ParseChunk). Whatever
// comes in: no chunk errors; each one records the next retrieve-mail number with it; the store
// keeps chunks only of the partial mail and of complete ones; and a complete mail reassembles,
// at its total length, to the chunks of the run that completed it, in index order.
func FuzzMailChunks(f *testing.F) {
	seeds := readSeeds(f, "mailchunk")
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range seeds {
			if !yield(n) {
				return
			}
		}
	})
	a := func(i int) []byte { return seeds["ok-a-"+string(rune('0'+i))+".bin"] }
	f.Add(a(0), a(1), a(2), seeds["ok-b-single.bin"])
	f.Add(a(0), seeds["ok-b-single.bin"], a(1), a(2))
	f.Add(a(0), a(1), a(0), a(2))
	for i := range names {
		f.Add(seeds[names[i]], seeds[names[(i+1)%len(names)]], seeds[names[(i+2)%len(names)]], seeds[names[(i+3)%len(names)]])
	}
	s, err := openStore(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	defer s.close()
	s.db.NoSync = true // the test looks at the transactions, not at the disk
	f.Fuzz(func(t *testing.T, a, b, c, d []byte) {
		if err := s.db.Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bucketMailChunks, bucketMailReady} {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
				if _, err := tx.CreateBucket(name); err != nil {
					return err
				}
			}
			return tx.Bucket(bucketMeta).Delete(keyMailPartial)
		}); err != nil {
			t.Fatal(err)
		}
		// run holds, per mail id, the chunk data of the current run (since its index 0).
		run := map[sealmail.ID]map[uint32][]byte{}
		complete := map[sealmail.ID][]byte{}
		now := time.Now()
		for i, item := range [][]byte{a, b, c, d} {
			ch, err := sealmail.ParseChunk(item, fuzzChunkSize, fuzzMaxSealed)
			if err != nil {
				continue
			}
			next := uint32(i + 1)
			res, _, err := s.storeChunk(ch, next, now)
			if err != nil {
				t.Fatalf("item %d: %v", i, err)
			}
			if seq, _ := s.mailSeq(); seq != next {
				t.Fatalf("item %d stored with retrieve-mail number %d, want %d", i, seq, next)
			}
			switch res {
			case chunkStored, chunkComplete:
				if ch.Index == 0 {
					run[ch.ID] = map[uint32][]byte{}
				}
				run[ch.ID][ch.Index] = bytes.Clone(ch.Data)
			}
			if res != chunkComplete {
				continue
			}
			var want []byte
			for index := range ch.Count {
				d, ok := run[ch.ID][index]
				if !ok {
					t.Fatalf("mail %x complete without chunk %d", ch.ID, index)
				}
				want = append(want, d...)
			}
			complete[ch.ID] = want
		}
		ready, err := s.readyMails()
		if err != nil {
			t.Fatal(err)
		}
		if len(ready) != len(complete) {
			t.Fatalf("%d complete mails stored, want %d", len(ready), len(complete))
		}
		for _, id := range ready {
			got, err := s.sealedMail(id)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, complete[id]) {
				t.Fatalf("mail %x reassembled as %d bytes, want %d", id, len(got), len(complete[id]))
			}
		}
		ms, err := s.mailState()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.db.View(func(tx *bolt.Tx) error {
			var p partialMail
			if ms.Partial {
				getJSON(tx.Bucket(bucketMeta), keyMailPartial, &p)
			}
			return tx.Bucket(bucketMailChunks).ForEach(func(k, _ []byte) error {
				var id sealmail.ID
				copy(id[:], k)
				if _, ok := complete[id]; !ok && (!ms.Partial || id != p.ID) {
					t.Fatalf("chunk %x kept of a mail neither partial nor complete", k)
				}
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
	})
}
