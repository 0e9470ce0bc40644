package vote

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/internal/syncbuf"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board/box"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

var (
	opens  = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	closes = time.Date(2026, 5, 1, 20, 0, 0, 0, time.UTC)
)

// harness is a running vote service on a temporary box directory, with a settable clock.
type harness struct {
	t        testing.TB
	dir      string
	svc      *Service
	p        *board.Params
	voters   []*keys.IdentityPrivateKey
	trustees []*keys.IdentityPrivateKey
	clock    atomic.Int64 // unix milliseconds
	cancel   context.CancelFunc
	done     chan struct{}
	reg      *prometheus.Registry // of the running service
	logs     syncbuf.Buffer       // the running service's log
}

func newHarness(t testing.TB, nVoters int) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir()}
	h.clock.Store(opens.Add(time.Hour).UnixMilli())
	boxKey, err := box.Key(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	x, err := group.RandomScalar(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &board.Params{ElectionID: "mayor", PublicKey: verificatum.PublicKey{Y: new(group.Element).BaseExp(x)},
		Questions: []int{3}, Threshold: 2, Opens: opens, Closes: closes, BoxKey: boxKey.Public()}
	boxKey.Wipe()
	copy(p.ElectionHash[:], "definition hash of the mayor vote")
	for range nVoters {
		k, _ := keys.GenerateIdentityKey(nil)
		h.voters = append(h.voters, k)
		p.Voters = append(p.Voters, k.Public())
	}
	for range 3 {
		k, _ := keys.GenerateIdentityKey(nil)
		h.trustees = append(h.trustees, k)
		p.Trustees = append(p.Trustees, k.Public())
	}
	if err := box.Install(h.dir, p); err != nil {
		t.Fatal(err)
	}
	h.p = p
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) now() time.Time { return time.UnixMilli(h.clock.Load()) }

func (h *harness) start() {
	h.t.Helper()
	h.reg = prometheus.NewRegistry()
	svc, err := New(Config{Dir: h.dir, Geometry: sphinx.DefaultGeometry(), Now: h.now, Registerer: h.reg, Logger: slog.New(slog.NewTextHandler(&h.logs, nil))})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.svc, h.cancel, h.done = svc, cancel, make(chan struct{})
	go func() { svc.Run(ctx); close(h.done) }()
}

func (h *harness) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}

// replier records the one answer of a delivery.
type replier struct{ data []byte }

func (r *replier) CanReply() bool { return true }
func (r *replier) Reply(_ context.Context, b []byte) error {
	if r.data != nil {
		return errors.New("SURB already used")
	}
	r.data = bytes.Clone(b)
	return nil
}

// deliver sends data as one message to election id and returns the ack.
func (h *harness) deliver(id string, data []byte) *client.Ack {
	h.t.Helper()
	var mid client.MessageID
	rand.Read(mid[:])
	frags, err := client.Split(mid, data, client.FragmentCapacity(sphinx.DefaultGeometry()))
	if err != nil {
		h.t.Fatal(err)
	}
	return h.deliverRaw(id, frags[0].Marshal())
}

func (h *harness) deliverRaw(id string, frag []byte) *client.Ack {
	h.t.Helper()
	r := &replier{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.svc.Deliver(ctx, &service.Request{Recipient: id, Data: frag}, r); err != nil {
		h.t.Fatalf("deliver: %v", err)
	}
	a, err := client.ParseAck(r.data)
	if err != nil {
		h.t.Fatalf("ack: %v", err)
	}
	return a
}

func (h *harness) cast(voter, choice int) []byte {
	h.t.Helper()
	c, err := board.NewCast(rand.Reader, h.p, h.voters[voter], []int{choice})
	if err != nil {
		h.t.Fatal(err)
	}
	return c.Marshal()
}

func (h *harness) boardFile() []byte {
	b, err := os.ReadFile(filepath.Join(h.dir, h.p.ElectionID, box.BoardFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		h.t.Fatal(err)
	}
	return b
}

func (h *harness) stored(a *client.Ack, cast []byte) *board.Receipt {
	h.t.Helper()
	if a.Status != client.AckStored {
		h.t.Fatalf("ack status %s (%s), want stored", a.Status, a.Answer)
	}
	r, err := board.ParseReceipt(a.Answer)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := r.VerifyCast(h.p, cast); err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *harness) closeRequest(signers ...int) {
	h.t.Helper()
	var sigs []*board.CloseSignature
	for _, i := range signers {
		s, err := board.SignClose(h.p, i, h.trustees[i-1])
		if err != nil {
			h.t.Fatal(err)
		}
		sigs = append(sigs, s)
	}
	c, err := board.NewClose(h.p, sigs)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := box.RequestClose(h.dir, c); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) waitClosed() []*board.Entry {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		es, err := box.ReadBoard(h.dir, h.p.ElectionID)
		if err != nil {
			h.t.Fatal(err)
		}
		if n := len(es); n > 0 && es[n-1].Kind == board.KindClose {
			return es
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatal("the box did not close the election")
	return nil
}

func TestCastReceiptRevoteClose(t *testing.T) {
	h := newHarness(t, 3)
	c0 := h.cast(0, 1)
	r0 := h.stored(h.deliver("mayor", c0), c0)
	if r0.Seq != 0 {
		t.Fatalf("first receipt for entry %d", r0.Seq)
	}
	// A retransmission gets the same receipt and no new entry.
	size := len(h.boardFile())
	if again := h.stored(h.deliver("mayor", c0), c0); !bytes.Equal(again.Marshal(), r0.Marshal()) {
		t.Fatal("a retransmission got another receipt")
	}
	if len(h.boardFile()) != size {
		t.Fatal("a retransmission changed the board")
	}
	c1 := h.cast(1, 2)
	h.stored(h.deliver("mayor", c1), c1)
	revote := h.cast(0, 0)
	if r := h.stored(h.deliver("mayor", revote), revote); r.Seq != 2 {
		t.Fatalf("re-vote is entry %d, want 2", r.Seq)
	}

	// Closing waits for the end of the voting period.
	h.closeRequest(1, 3)
	time.Sleep(2 * closePoll)
	if es, _ := box.ReadBoard(h.dir, "mayor"); len(es) != 3 {
		t.Fatalf("board of %d entries before the end of the voting period", len(es))
	}
	h.clock.Store(closes.UnixMilli())
	es := h.waitClosed()
	if err := board.VerifyBoard(h.p, es); err != nil {
		t.Fatal(err)
	}
	lists, err := board.InputLists(h.p, es)
	if err != nil || len(lists[0]) != 2 || !lists[0][1].Equal(mustCast(t, revote).Ballots[0].Ciphertext) {
		t.Fatalf("input lists %v, %v: want voter 1's ballot then voter 0's re-vote", lists, err)
	}
	if later, err := r0.OnBoard(es); err != nil || later != 2 {
		t.Fatalf("receipt 0 on board: %d, %v", later, err)
	}
	// After the close: refused, board unchanged; a retransmission still gets its receipt.
	size = len(h.boardFile())
	a := h.deliver("mayor", h.cast(2, 0))
	if a.Status != client.AckRefused || !strings.Contains(string(a.Answer), `election "mayor" is closed`) {
		t.Fatalf("cast after close: %s %q", a.Status, a.Answer)
	}
	h.stored(h.deliver("mayor", c1), c1)
	if len(h.boardFile()) != size {
		t.Fatal("the board changed after the close")
	}
}

// A close request that cannot be used is logged once, not at every poll, and the board stays
// open; a usable request then closes it.
func TestBadCloseRequestLoggedOnce(t *testing.T) {
	h := newHarness(t, 1)
	h.clock.Store(closes.UnixMilli())
	// Written whole at once (rename), so that no poll reads it half-written: a different
	// problem would rightly be logged again.
	tmp := filepath.Join(h.dir, "close.tmp")
	if err := os.WriteFile(tmp, []byte("not a close request"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(h.dir, "mayor", box.CloseFile)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3*closePoll + closePoll/2)
	if n := strings.Count(h.logs.String(), "unreadable close request"); n != 1 {
		t.Fatalf("logged %d times over three polls, want once:\n%s", n, h.logs.String())
	}
	if es, _ := box.ReadBoard(h.dir, "mayor"); len(es) != 0 {
		t.Fatalf("%d entries after an unreadable close request", len(es))
	}
	h.closeRequest(1, 2)
	h.waitClosed()
}

func mustCast(t *testing.T, b []byte) *board.Cast {
	c, err := board.ParseCast(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRefusalsLeaveTheBoardUnchanged(t *testing.T) {
	h := newHarness(t, 2)
	good := h.cast(0, 1)
	stranger, _ := keys.GenerateIdentityKey(nil)
	strangerCast, err := board.NewCast(rand.Reader, h.p, stranger, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	copied := mustCast(t, h.cast(1, 0))
	copied.Ballots[0] = mustCast(t, good).Ballots[0]
	copied.Signature = [64]byte{}
	otherHash := *h.p
	otherHash.ElectionHash[0] ^= 1
	wrongDef, err := board.NewCast(rand.Reader, &otherHash, h.voters[0], []int{0})
	if err != nil {
		t.Fatal(err)
	}
	offCurve := bytes.Clone(good)
	offCurve[len(offCurve)-300] ^= 0x55

	var mid client.MessageID
	big, _ := client.Split(mid, make([]byte, client.FragmentCapacity(sphinx.DefaultGeometry())+1), client.FragmentCapacity(sphinx.DefaultGeometry()))

	cases := []struct {
		name   string
		ack    func() *client.Ack
		status client.AckStatus
		answer string
	}{
		{"unknown election", func() *client.Ack { return h.deliver("nope", good) }, client.AckUnknownRecipient, `no election "nope"`},
		{"not a cast", func() *client.Ack { return h.deliver("mayor", []byte("hello")) }, client.AckMalformed, "malformed"},
		{"point off the curve", func() *client.Ack { return h.deliver("mayor", offCurve) }, client.AckMalformed, "malformed"},
		{"not eligible", func() *client.Ack { return h.deliver("mayor", strangerCast.Marshal()) }, client.AckRefused, "is not on the voter list"},
		{"copied ballot", func() *client.Ack { return h.deliver("mayor", copied.Marshal()) }, client.AckRefused, "voter signature invalid"},
		{"other definition", func() *client.Ack { return h.deliver("mayor", wrongDef.Marshal()) }, client.AckRefused, "election hash differs"},
		{"oversize message", func() *client.Ack { return h.deliverRaw("mayor", big[0].Marshal()) }, client.AckTooLarge, "at most"},
		{"not a fragment", func() *client.Ack { return h.deliverRaw("mayor", append([]byte{1}, make([]byte, 30)...)) }, client.AckMalformed, ""},
		{"before the opening", func() *client.Ack {
			h.clock.Store(opens.Add(-time.Second).UnixMilli())
			defer h.clock.Store(opens.Add(time.Hour).UnixMilli())
			return h.deliver("mayor", h.cast(0, 2))
		}, client.AckRefused, `election "mayor" is not open`},
		{"after the end", func() *client.Ack {
			h.clock.Store(closes.UnixMilli())
			defer h.clock.Store(opens.Add(time.Hour).UnixMilli())
			return h.deliver("mayor", h.cast(0, 2))
		}, client.AckRefused, `election "mayor" is not open`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.boardFile()
			a := tc.ack()
			if a.Status != tc.status || !strings.Contains(string(a.Answer), tc.answer) {
				t.Fatalf("got %s %q, want %s with %q", a.Status, a.Answer, tc.status, tc.answer)
			}
			if !bytes.Equal(h.boardFile(), before) {
				t.Fatal("a refused cast changed the board")
			}
		})
	}
	// A ballot copied and re-signed by its thief fails its proof.
	copied = mustCast(t, h.cast(1, 0))
	copied.Ballots[0] = mustCast(t, good).Ballots[0]
	thief, err := board.NewCast(rand.Reader, h.p, h.voters[1], []int{0})
	if err != nil {
		t.Fatal(err)
	}
	thief.Ballots = copied.Ballots
	resigned := resign(t, thief, h.voters[1])
	if a := h.deliver("mayor", resigned); a.Status != client.AckRefused || !strings.Contains(string(a.Answer), "copied or altered ballot") {
		t.Fatalf("copied ballot: %s %q", a.Status, a.Answer)
	}
	if len(h.boardFile()) != 0 {
		t.Fatal("refusals wrote to the board")
	}
}

// resign signs c again with k: what a voter who copied someone's ballot would send.
func resign(t *testing.T, c *board.Cast, k *keys.IdentityPrivateKey) []byte {
	t.Helper()
	// The signature covers the cast without its signature: the encoding minus the last leaf.
	b := c.Marshal()
	body := b[5 : len(b)-(5+board.SignatureSize)]
	copy(c.Signature[:], k.Sign(body))
	return c.Marshal()
}

// Many concurrent casts, retransmissions among them: every one is answered, every accepted
// cast is on the board exactly once, and the board verifies.
func TestFlood(t *testing.T) {
	h := newHarness(t, 40)
	casts := make([][]byte, len(h.voters))
	for i := range casts {
		casts[i] = h.cast(i, i%3)
	}
	var wg sync.WaitGroup
	receipts := make([][]*board.Receipt, len(casts))
	var mu sync.Mutex
	for i := range casts {
		for range 3 { // each cast three times at once
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := h.stored(h.deliver("mayor", casts[i]), casts[i])
				mu.Lock()
				receipts[i] = append(receipts[i], r)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	es, err := box.ReadBoard(h.dir, "mayor")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != len(casts) {
		t.Fatalf("%d entries for %d distinct casts", len(es), len(casts))
	}
	for i, rs := range receipts {
		for _, r := range rs[1:] {
			if !bytes.Equal(r.Marshal(), rs[0].Marshal()) {
				t.Fatalf("cast %d got different receipts", i)
			}
		}
	}
	h.closeRequest(1, 2)
	h.clock.Store(closes.UnixMilli())
	if err := board.VerifyBoard(h.p, h.waitClosed()); err != nil {
		t.Fatal(err)
	}
}

// A crash in the middle of an append leaves an incomplete frame; on restart it is truncated,
// the rest of the board is checked, and casting goes on.
func TestTornTailRecovery(t *testing.T) {
	h := newHarness(t, 3)
	c0 := h.cast(0, 0)
	h.stored(h.deliver("mayor", c0), c0)
	h.stop()
	path := filepath.Join(h.dir, "mayor", box.BoardFile)
	good := h.boardFile()
	// Half of another entry, as a crash during write would leave it.
	torn := append(bytes.Clone(good), good[:len(good)/2]...)
	if err := os.WriteFile(path, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	h.start()
	c1 := h.cast(1, 1)
	if r := h.stored(h.deliver("mayor", c1), c1); r.Seq != 1 {
		t.Fatalf("after recovery the next entry is %d, want 1", r.Seq)
	}
	// A board whose complete entries break the rules is not silently repaired.
	h.stop()
	b := h.boardFile()
	b[len(b)-10] ^= 1 // the box signature of the last entry
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Dir: h.dir, Geometry: sphinx.DefaultGeometry(), Now: h.now})
	if err != nil {
		t.Fatal(err)
	}
	el, _ := svc.lookup("mayor")
	if _, err := svc.openBoard(el); err == nil || !strings.Contains(err.Error(), "board entry 1: box signature invalid") {
		t.Fatalf("corrupt board opened: %v", err)
	}
}

func TestInstallRefusesAnotherBox(t *testing.T) {
	h := newHarness(t, 1)
	other := *h.p
	other.ElectionID = "other"
	k, _ := keys.GenerateIdentityKey(nil)
	other.BoxKey = k.Public()
	if err := box.Install(h.dir, &other); err == nil || !strings.Contains(err.Error(), "this box's key") {
		t.Fatalf("installed parameters for another box: %v", err)
	}
	changed := *h.p
	changed.Threshold = 3
	if err := box.Install(h.dir, &changed); err == nil || !strings.Contains(err.Error(), "already installed") {
		t.Fatalf("replaced the parameters of an election: %v", err)
	}
	if err := box.Install(h.dir, h.p); err != nil {
		t.Fatalf("installing the same parameters again: %v", err)
	}
	if _, err := New(Config{Dir: h.dir, Geometry: sphinx.Geometry{Hops: 5, PayloadSize: 2048}}); err == nil {
		t.Fatal("a geometry too small for a cast was accepted")
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, 2)
	c := h.cast(0, 1)
	h.stored(h.deliver("mayor", c), c)
	h.stored(h.deliver("mayor", c), c)
	stranger, _ := keys.GenerateIdentityKey(nil)
	sc, err := board.NewCast(rand.Reader, h.p, stranger, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	h.deliver("mayor", sc.Marshal())
	h.deliver("nope", c)
	h.deliver("mayor", []byte("junk"))
	for _, c := range []struct {
		name, reason string
		want         float64
	}{
		{"mixd_vote_casts_appended_total", "", 1},
		{"mixd_vote_retransmitted_casts_total", "", 1},
		{"mixd_vote_refusals_total", reasonNotEligible, 1},
		{"mixd_vote_refusals_total", reasonUnknownElection, 1},
		{"mixd_vote_refusals_total", reasonMalformed, 1},
		{"mixd_vote_refusals_total", reasonBadProof, 0},
		{"mixd_vote_commit_seconds", "", 2}, // the cast and its retransmission
		{"mixd_vote_commit_casts", "", 2},
	} {
		if got := h.metric(c.name, c.reason); got != c.want {
			t.Errorf("%s{reason=%q} = %v, want %v", c.name, c.reason, got, c.want)
		}
	}
}

// metric reads a counter (with its reason label, if any) or a histogram's sample count.
func (h *harness) metric(name, reason string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if reason != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != reason) {
				continue
			}
			if hg := m.GetHistogram(); hg != nil {
				return float64(hg.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	h.t.Fatalf("no metric %s{reason=%q}", name, reason)
	return 0
}

// Run is the single writer of the boards even when it is called twice (mixd once started it
// from main and from the node): the second call is refused before it touches anything, and
// a flood of distinct casts is stored in full. With two writers, two Stage calls built entries
// with the same sequence number and the loser was refused as "not open".
func TestOneWriter(t *testing.T) {
	h := newHarness(t, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The harness's Run must be the first: wait until it has claimed the writer.
	for !h.svc.ran.Load() {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() { second <- h.svc.Run(ctx) }()
	casts := make([][]byte, len(h.voters))
	for i := range casts {
		casts[i] = h.cast(i, i%3)
	}
	acks := make([]*client.Ack, len(casts))
	var wg sync.WaitGroup
	for i := range casts {
		wg.Go(func() { acks[i] = h.deliver("mayor", casts[i]) })
	}
	wg.Wait()
	for i, a := range acks {
		if a.Status != client.AckStored {
			t.Errorf("cast %d: ack status %s (%s), want stored", i, a.Status, a.Answer)
		}
	}
	cancel()
	if err := <-second; err == nil {
		t.Error("a second Run ran as a second writer")
	}
	h.stop()
	es, err := box.ReadBoard(h.dir, "mayor")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != len(casts) {
		t.Fatalf("%d entries for %d distinct casts", len(es), len(casts))
	}
}

// outside uses the entry's millisecond time: the period is [Opens, Closes).
func TestOutside(t *testing.T) {
	p := &board.Params{Opens: opens, Closes: closes}
	for _, tc := range []struct {
		now  time.Time
		want bool
	}{
		{opens.Add(-time.Millisecond), true},
		{opens, false},
		{closes.Add(-time.Microsecond), false},
		{closes, true},
	} {
		if got := outside(p, tc.now); got != tc.want {
			t.Errorf("outside at %s = %v, want %v", tc.now.Format(time.RFC3339Nano), got, tc.want)
		}
	}
}
