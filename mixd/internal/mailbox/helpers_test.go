package mailbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	bolt "go.etcd.io/bbolt"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// testGeometry has a small payload, so that a message of a few KiB takes several fragments.
var testGeometry = sphinx.Geometry{Hops: 5, PayloadSize: 2048}

var testCapacity = client.FragmentCapacity(testGeometry)

// recorder is a Replier test double that records what the service answers.
type recorder struct {
	noSURB  bool
	fail    error
	mu      sync.Mutex
	replies [][]byte
}

func (r *recorder) CanReply() bool { return !r.noSURB }

func (r *recorder) Reply(_ context.Context, data []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.noSURB {
		return errors.New("no SURB")
	}
	if len(r.replies) > 0 {
		return errors.New("SURB already used")
	}
	if r.fail != nil {
		return r.fail
	}
	r.replies = append(r.replies, bytes.Clone(data))
	return nil
}

// ack returns the one ack recorded, or nil when there was no reply.
func (r *recorder) ack(t *testing.T) *client.Ack {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.replies) == 0 {
		return nil
	}
	a, err := client.ParseAck(r.replies[0])
	if err != nil {
		t.Fatalf("reply is not an ack: %v", err)
	}
	return a
}

// send delivers one fragment to user and returns the ack (nil: no reply).
func send(t *testing.T, s *Service, user string, frag []byte) *client.Ack {
	t.Helper()
	r := &recorder{}
	if err := s.Deliver(context.Background(), &service.Request{Recipient: user, Data: frag}, r); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	return r.ack(t)
}

// sendStored delivers a fragment and requires the "stored" ack for it.
func sendStored(t *testing.T, s *Service, user string, frag []byte) {
	t.Helper()
	a := send(t, s, user, frag)
	f, err := client.ParseFragment(frag, testCapacity)
	if err != nil {
		t.Fatal(err)
	}
	if a == nil || a.ID != f.ID || a.Index != f.Index || a.Status != client.AckStored {
		t.Fatalf("fragment %d of %s: ack %+v, want stored", f.Index, f.ID, a)
	}
}

func newID(t testing.TB) client.MessageID {
	var id client.MessageID
	if _, err := rand.Read(id[:]); err != nil {
		t.Fatal(err)
	}
	return id
}

// testMessage is an RFC 5322 message of about size bytes with CRLF line endings.
func testMessage(t testing.TB, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: alice@alpha.example\r\nTo: bob@beta.example\r\nSubject: test %x\r\nMessage-ID: <%x@alpha.example>\r\n\r\n", newID(t), newID(t))
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "line %06d of the body, with some text to fill it up\r\n", i)
	}
	return b.Bytes()
}

// fragments cuts msg into encoded fragments.
func fragments(t testing.TB, id client.MessageID, msg []byte) [][]byte {
	t.Helper()
	fs, err := client.Split(id, msg, testCapacity)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(fs))
	for i, f := range fs {
		out[i] = f.Marshal()
	}
	return out
}

// newMailstore opens a mail store with users bob (no quota) and tiny (a 1000-byte quota).
func newMailstore(t *testing.T) *mailstore.Store {
	t.Helper()
	st, err := mailstore.Open(filepath.Join(t.TempDir(), "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, u := range []struct {
		name  string
		quota int64
	}{{"bob", 0}, {"tiny", 1000}} {
		if err := st.CreateUser(u.name, u.quota); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func inbox(t *testing.T, st *mailstore.Store, user string) [][]byte {
	t.Helper()
	snap, err := st.Snapshot(user, mailstore.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	for _, m := range snap.Messages {
		uids = append(uids, m.UID)
	}
	if len(uids) == 0 {
		return nil
	}
	msgs, err := st.Read(user, mailstore.Inbox, uids, true, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		out = append(out, m.Body)
	}
	return out
}

func testConfig(t *testing.T, path string, b Backend) Config {
	return Config{
		Path:     path,
		Geometry: testGeometry,
		Backend:  b,
		RetryMin: 10 * time.Millisecond,
		RetryMax: 100 * time.Millisecond,
		Logger:   testLogger(t),
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newService(t *testing.T, cfg Config) *Service {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// run runs s.Run until the returned function is called, which waits for Run to return nil.
func run(t *testing.T, s *Service) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds, failing the test after a generous time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// crash simulates killing mixd: the database file is copied as it is on disk (every commit was
// fsync'd, so this is what a restart finds), the old handle is dropped without Service.Close,
// and a new Service opens the copy.
func crash(t *testing.T, s *Service, cfg Config) (*Service, Config) {
	t.Helper()
	src, err := os.Open(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Path = filepath.Join(t.TempDir(), "after-crash.db")
	dst, err := os.OpenFile(cfg.Path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	src.Close()
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	s.db.Close() // release the file lock only; no Service.Close
	return newService(t, cfg), cfg
}

// count returns the number of keys in a bucket of the service's database.
func count(t *testing.T, s *Service, bucket []byte) int {
	t.Helper()
	var n int
	if err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucket).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// metricValue reads a counter or gauge.
func metricValue(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
