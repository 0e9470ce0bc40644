package mailbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/mailstore"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
)

func loadFragmentSeeds(t testing.TB) [][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "fragments.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var seeds [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatalf("testdata/fragments.txt:%d: %v", n, err)
		}
		seeds = append(seeds, b)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return seeds
}

func TestFragmentSeedsNotEmpty(t *testing.T) {
	seeds := loadFragmentSeeds(t)
	valid := 0
	for _, s := range seeds {
		if _, err := client.ParseFragment(s, testCapacity); err == nil {
			valid++
		}
	}
	if len(seeds) == 0 || valid == 0 || valid == len(seeds) {
		t.Fatalf("%d seeds, %d valid: want both valid and invalid ones", len(seeds), valid)
	}
}

// Limits of FuzzDeliver: as small as a real provider's are relative to its traffic, so that
// every input runs into them (a limit of 1<<40 could never show issue 13 finding 2).
const (
	fuzzMaxPending        = 8 * 1369 // eight fragments of the test geometry
	fuzzMaxUserPending    = 4 * 1369
	fuzzMaxUserIncomplete = 2
)

// FuzzDeliver feeds two arbitrary byte strings to a service whose limits are already filled by
// forged first fragments, as fragments for bob and carol. Whatever comes in, Deliver does not
// fail or panic and answers at most once, answers a fragment that parses (and re-encodes to the
// same bytes) with one of the statuses the service gives and the rest with "malformed" or
// nothing; what the service charges equals what it stores and stays within its limits; and a
// real message to dave is still stored.
func FuzzDeliver(f *testing.F) {
	seeds := loadFragmentSeeds(f)
	for i := range seeds {
		f.Add(seeds[i], seeds[(i+1)%len(seeds)])
	}
	st, err := mailstore.Open(filepath.Join(f.TempDir(), "mail.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	for _, u := range []string{"bob", "carol", "dave"} {
		if err := st.CreateUser(u, 0); err != nil {
			f.Fatal(err)
		}
	}
	if fuzzMaxPending != 8*testCapacity {
		f.Fatalf("test capacity %d: update the fuzz limits", testCapacity)
	}
	// One service for every input, emptied before each: a new database file per input costs
	// file creation and fsyncs that would leave the fuzzer little time for the inputs.
	s, err := New(Config{
		Path: filepath.Join(f.TempDir(), "mailbox.db"), Geometry: testGeometry, Backend: NewStoreBackend(st),
		MaxPending: fuzzMaxPending, MaxUserPending: fuzzMaxUserPending, MaxUserIncomplete: fuzzMaxUserIncomplete,
	})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	s.db.NoSync = true // the test looks at the transactions, not at the disk
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if err := s.db.Update(func(tx *bolt.Tx) error {
			for _, b := range allBuckets {
				if err := tx.DeleteBucket(b); err != nil {
					return err
				}
				if _, err := tx.CreateBucket(b); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"bob", "carol", "bob", "carol", "dave", "bob"} {
			deliverFuzz(t, s, u, forgedFirst(t, fuzzMaxUserPending))
		}
		deliverFuzz(t, s, "bob", a)
		deliverFuzz(t, s, "carol", b)
		checkCharges(t, s)
		for i, frag := range fragments(t, newID(t), testMessage(t, 2*testCapacity)[:2*testCapacity]) {
			if a := deliverFuzz(t, s, "dave", frag); a == nil || a.Status != client.AckStored {
				t.Fatalf("real message to dave, fragment %d: ack %+v, want stored", i, a)
			}
		}
		checkCharges(t, s)
	})
}

// deliverFuzz delivers data to user and checks the answer.
func deliverFuzz(t *testing.T, s *Service, user string, data []byte) *client.Ack {
	t.Helper()
	r := &recorder{}
	if err := s.Deliver(context.Background(), &service.Request{Recipient: user, Data: data}, r); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	a := r.ack(t)
	frag, perr := client.ParseFragment(data, testCapacity)
	if perr != nil {
		if a != nil && a.Status != client.AckMalformed {
			t.Fatalf("unparsable fragment (%v) answered %v", perr, a.Status)
		}
		return a
	}
	if !bytes.Equal(frag.Marshal(), data) {
		t.Fatal("a fragment that parses does not re-encode to the same bytes")
	}
	if a == nil || a.ID != frag.ID || a.Index != frag.Index {
		t.Fatalf("fragment %d of %s answered %+v", frag.Index, frag.ID, a)
	}
	switch a.Status {
	case client.AckStored, client.AckMalformed, client.AckOverQuota, client.AckTooLarge:
	default:
		t.Fatalf("fragment answered %v", a.Status)
	}
	return a
}

// checkCharges requires the charges the service keeps to equal a recount of what it stores,
// and to be within its limits.
func checkCharges(t *testing.T, s *Service) {
	t.Helper()
	type charges struct {
		users map[string]usage
		total uint64
		index []string
	}
	read := func(tx *bolt.Tx) charges {
		c := charges{users: map[string]usage{}, total: getTotal(tx)}
		// Cursors, not bucket statistics: those do not see a transaction's own writes.
		for _, b := range [][]byte{bucketLRU, bucketUserLRU} {
			cur := tx.Bucket(b).Cursor()
			for k, _ := cur.First(); k != nil; k, _ = cur.Next() {
				c.index = append(c.index, string(k))
			}
		}
		tx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
			if k[0] == 'u' {
				c.users[string(k[1:])] = getUsage(tx, string(k[1:]))
			}
			return nil
		})
		return c
	}
	var kept, recounted charges
	errRollback := errors.New("rollback")
	err := s.db.Update(func(tx *bolt.Tx) error {
		kept = read(tx)
		if err := rebuild(tx); err != nil {
			return err
		}
		recounted = read(tx)
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(kept, recounted) {
		t.Fatalf("charges %+v, but the stored fragments come to %+v", kept, recounted)
	}
	if kept.total > fuzzMaxPending {
		t.Fatalf("%d bytes held, over the limit of %d", kept.total, fuzzMaxPending)
	}
	for user, u := range kept.users {
		if u.Incomplete+u.Complete > fuzzMaxUserPending || u.Count > fuzzMaxUserIncomplete {
			t.Fatalf("%s: %+v over the limits", user, u)
		}
	}
}
