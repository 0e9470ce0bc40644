package mailbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	bolt "go.etcd.io/bbolt"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
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

// loadLMTPSeeds reads testdata/lmtp_replies.txt: one Go-quoted server script per line.
func loadLMTPSeeds(t testing.TB) [][]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "lmtp_replies.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var seeds [][]byte
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := strconv.Unquote(line)
		if err != nil {
			t.Fatalf("testdata/lmtp_replies.txt:%d: %v", n+1, err)
		}
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// TestLMTPSeedsNotEmpty also checks that the first seeds are what their comments say, so that
// the fuzzer starts from a delivery, a refusal and a temporary failure.
func TestLMTPSeedsNotEmpty(t *testing.T) {
	seeds := loadLMTPSeeds(t)
	if len(seeds) < 6 {
		t.Fatalf("%d LMTP seeds", len(seeds))
	}
	for i, want := range []error{nil, nil, ErrUnknownUser, ErrOverQuota, ErrTooLarge, errTemporary} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go serveScript(l, seeds[i])
		b, _ := NewLMTPBackend(LMTPConfig{Network: "tcp", Addr: l.Addr().String(), Domain: "beta.example"})
		err = b.Deliver(context.Background(), "bob", []byte("Subject: x\r\n\r\nx\r\n"))
		l.Close()
		_, permanent := permanentStatus(err)
		switch {
		case want == nil && err != nil, want == errTemporary && (err == nil || permanent), want != nil && want != errTemporary && !errors.Is(err, want):
			t.Errorf("seed %d: %v, want %v", i, err, want)
		}
	}
}

var errTemporary = errors.New("temporary")

// serveScript answers every connection to l with script, whatever the client says, and then
// ends its side of the connection.
func serveScript(l net.Listener, script []byte) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write(script)
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c)
		}()
	}
}

// replyLines counts the lines of script that start with prefix.
func replyLines(script []byte, prefix string) int {
	n := 0
	for _, line := range strings.Split(strings.ReplaceAll(string(script), "\r\n", "\n"), "\n") {
		if strings.HasPrefix(line, prefix) {
			n++
		}
	}
	return n
}

// FuzzLMTPReplies has the LMTP backend deliver a message to, and ask about a user of, a server
// that answers with arbitrary bytes. Whatever it answers, neither call panics or outlasts its
// timeout; a delivery succeeds only after replies that start with 2 for every step and a 354
// for DATA; a failure is permanent (the sender bounces the mail) only for a 5xx reply, never
// for a 4xx reply or a broken exchange; a user is known only after 2xx replies up to RCPT and
// unknown only after a 5xx reply.
func FuzzLMTPReplies(f *testing.F) {
	for _, s := range loadLMTPSeeds(f) {
		f.Add(s)
	}
	msg := []byte("From: alice@alpha.example\r\nTo: bob@beta.example\r\nSubject: fuzz\r\n\r\nhello\r\n")
	f.Fuzz(func(t *testing.T, script []byte) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go serveScript(l, script)
		b, err := NewLMTPBackend(LMTPConfig{Network: "tcp", Addr: l.Addr().String(), Domain: "beta.example", Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		err = b.Deliver(context.Background(), "bob", msg)
		_, permanent := permanentStatus(err)
		var se *smtp.SMTPError
		isSMTP := errors.As(err, &se)
		switch {
		case err == nil:
			if replyLines(script, "2") < 5 || replyLines(script, "354") < 1 {
				t.Fatalf("delivered after %q", script)
			}
		case permanent && (!isSMTP || se.Code/100 != 5):
			t.Fatalf("permanent failure %v without a 5xx reply", err)
		case isSMTP && se.Code/100 != 5 && permanent:
			t.Fatalf("%d reply taken as permanent: %v", se.Code, err)
		}
		exists, err := b.UserExists(context.Background(), "bob")
		switch {
		case exists && (err != nil || replyLines(script, "2") < 4):
			t.Fatalf("user known (%v) after %q", err, script)
		case !exists && err == nil && replyLines(script, "5") < 1:
			t.Fatalf("user unknown without a 5xx reply in %q", script)
		}
	})
}
