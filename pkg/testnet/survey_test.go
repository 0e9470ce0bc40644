package testnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/dp"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/survey"
	"github.com/panoramix-mixnet/panoramix/pkg/survey/store"
	"github.com/panoramix-mixnet/panoramix/pkg/survey/store/storetest"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

// surveyNet starts the real binaries with client rates high enough that a client sends its
// submissions within a second or two, and cover traffic at every client.
func surveyNet(t testing.TB, lambdaP float64) *Net {
	t.Helper()
	return surveyNetPostgres(t, lambdaP, 1, nil)
}

// surveyNetPostgres is surveyNet with the clients' loop and drop cover rates (lambda_L =
// lambda_D) set too (a thousand clients at 1/s each would offer 2,000 cover packets a second),
// and the survey services of the providers named in pg storing into PostgreSQL
// (Options.SurveyPostgres).
func surveyNetPostgres(t testing.TB, lambdaP, lambdaCover float64, pg map[string]string) *Net {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the real binaries")
	}
	p := pki.DefaultParameters()
	p.EpochLength = 30 * time.Second
	p.MeanDelay = 10 * time.Millisecond
	p.MaxDelay = 100 * time.Millisecond
	p.LambdaP, p.LambdaL, p.LambdaD, p.LambdaM = lambdaP, lambdaCover, lambdaCover, 2
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := launch(t, ctx, Options{Parameters: &p, LogLevel: "info", SurveyPostgres: pg})
	return n
}

// commuteSurvey is the survey the load submits to: every question type, one of them
// perturbed locally.
func commuteSurvey(t testing.TB) *survey.Signed {
	k, err := keys.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Wipe()
	now := uint64(time.Now().Unix())
	sv, err := survey.Sign(&survey.Definition{
		Name: "commute", Title: "How do you get to work?", Collector: k.Public(), Opens: now - 60, Closes: now + 86400, Budget: 2 * dp.EpsilonUnit,
		Questions: []survey.Question{
			{ID: "mode", Text: "Usual mode", Type: survey.Categorical, Options: []string{"car", "bike", "train", "walk"}},
			{ID: "minutes", Text: "Minutes door to door", Type: survey.Integer, Lo: 0, Hi: 180},
			{ID: "km", Text: "Distance", Type: survey.Real, Decimals: 1, Lo: 0, Hi: 1005},
			{ID: "remote", Text: "Work from home sometimes", Type: survey.Boolean, LocalEpsilon: dp.EpsilonUnit},
		},
	}, k)
	if err != nil {
		t.Fatal(err)
	}
	return sv
}

// tally is what was sent, per question: the histogram of option values and the sum.
type tally struct {
	mu    sync.Mutex
	count int64
	hist  [][]int64
	sums  []*big.Int
}

func newTally(sv *survey.Signed) *tally {
	t := &tally{}
	for _, q := range sv.Definition.Questions {
		n := 0
		switch q.Type {
		case survey.Boolean:
			n = 2
		case survey.Categorical:
			n = len(q.Options)
		}
		t.hist = append(t.hist, make([]int64, n))
		t.sums = append(t.sums, new(big.Int))
	}
	return t
}

func (t *tally) add(s *survey.Submission) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count++
	for i, a := range s.Answers {
		if len(t.hist[i]) > 0 {
			t.hist[i][a.Value]++
		}
		t.sums[i].Add(t.sums[i], big.NewInt(a.Value))
	}
}

// loadRound makes the user names of each load distinct.
var loadRound atomic.Int64

// target is a survey and the domain of the provider whose survey service holds it.
type target struct {
	sv     *survey.Signed
	domain string
}

// load runs clients engines, each a user of one of the providers in turn, each sending
// perClient submissions to every target's survey, and waits until every one is acknowledged
// as stored. An engine stops once all of its submissions are acknowledged, as a participant
// who has answered goes offline. It returns what was sent to each target and how long sending
// took (from the first Send to the last acknowledgement).
//
// With queueFirst, every client queues its submissions before any engine runs and the clock
// starts with the engines, so that each lambda_P slot carries a submission until the client has
// sent them all (otherwise the slots that come before the Sends go out as drop decoys).
func load(t testing.TB, n *Net, targets []target, clients, perClient int, queueFirst bool) ([]*tally, time.Duration) {
	t.Helper()
	pc, err := n.PKIClient()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pdone := make(chan struct{})
	go func() { defer close(pdone); pc.Run(ctx) }()
	defer func() { cancel(); <-pdone }()

	var providers []*Node
	for _, nd := range n.Nodes {
		if nd.Role == "provider" {
			providers = append(providers, nd)
		}
	}
	type runner struct {
		e       *client.Engine
		stop    context.CancelFunc
		done    chan error
		ids     []client.MessageID
		pending int
	}
	runners := make([]*runner, clients)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	dir := t.TempDir()
	// The clients' stores elsewhere (BenchmarkSurveyEndToEnd): tmpfs takes their fsyncs off
	// the disk the daemons use.
	if d := os.Getenv("PANORAMIX_LOAD_CLIENT_DIR"); d != "" {
		var err error
		if dir, err = os.MkdirTemp(d, "load-clients-"); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
	}
	round := loadRound.Add(1)
	// One retrieve exchange fetches up to batch queued items (ACKs, loop echoes), so the rate
	// of items it can fetch, batch / interval, must exceed the rate they arrive at, lambda_P +
	// lambda_L (docs/spec/client.md section 6): twice that, as with one item per exchange. The
	// interval grows with the batch, so the provider sends as many frames down as with one
	// item per exchange at the base interval, for batch times fewer exchanges.
	p := n.Parameters()
	base := time.Duration(float64(time.Second) / (2 * (p.LambdaP + p.LambdaL)))
	batch := loadRetrieveBatch(t, base)
	retrieve := base * time.Duration(batch)
	t.Logf("engines retrieve up to %d items every %v", batch, retrieve.Round(time.Millisecond))
	// Every account exists before any engine runs: a provider answering hundreds of clients
	// answers its admin API slowly.
	created := time.Now()
	lks := make([]*keys.LinkPrivateKey, clients)
	for i := range lks {
		lk, err := n.AddUser(providers[i%len(providers)], fmt.Sprintf("p%d-%04d", round, i), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		lks[i] = lk
	}
	t.Logf("%d accounts created in %v", clients, time.Since(created).Round(time.Millisecond))
	for i := range runners {
		prov := providers[i%len(providers)]
		name := fmt.Sprintf("p%d-%04d", round, i)
		lk := lks[i]
		e, err := client.New(client.Config{DataDir: filepath.Join(dir, name), User: name, Domain: prov.Domain, LinkKey: lk, PKI: pc, Logger: log, RetrieveInterval: retrieve, RetrieveBatch: batch})
		if err != nil {
			for _, r := range runners[:i] {
				r.e.Close()
			}
			t.Fatal(err)
		}
		runners[i] = &runner{e: e, done: make(chan error, 1)}
	}
	t.Logf("%d engines created in %v", clients, time.Since(created).Round(time.Millisecond))
	started := false
	defer func() {
		cancel()
		for _, r := range runners {
			if started {
				if err := <-r.done; err != nil {
					t.Errorf("engine: %v", err)
				}
			}
			r.e.Close()
		}
	}()
	// The engines start together once all exist: the creation loop would otherwise compete
	// with the running ones for the CPU.
	startEngines := func() {
		for _, r := range runners {
			rctx, stop := context.WithCancel(ctx)
			r.stop = stop
			go func() { r.done <- r.e.Run(rctx) }()
		}
		started = true
	}
	if !queueFirst {
		startEngines()
	}
	sent := make([]*tally, len(targets))
	for i, tg := range targets {
		sent[i] = newTally(tg.sv)
	}
	smp := dp.NewSampler(nil)
	linkBase := linkSum(runners, func(r *runner) *client.Engine { return r.e })
	start := time.Now()
	// Each client sends from its own goroutine, as separate participants would: a Send
	// commits to the client's own store (one fsync), which must not serialise the clients.
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perClient {
				k := int64(i*perClient + j)
				for ti, tg := range targets {
					// The targets get different answers from one client, so that a
					// submission stored at the wrong survey shows in the aggregates.
					v := k + int64(ti)*3
					truth := []survey.Answer{
						{Type: survey.Categorical, Value: v % 4}, {Type: survey.Integer, Value: v % 181},
						{Type: survey.Real, Value: (v * 7) % 1006}, {Type: survey.Boolean, Value: v % 2},
					}
					id, err := survey.NewSubmissionID(rand.Reader)
					if err != nil {
						errs <- err
						return
					}
					sub, err := survey.NewSubmission(tg.sv, id, truth, smp)
					if err != nil {
						errs <- err
						return
					}
					data, err := sub.Marshal()
					if err != nil {
						errs <- err
						return
					}
					mid, err := r.e.Send(ctx, client.Destination{Domain: tg.domain, Recipient: tg.sv.Definition.Name, Service: survey.ServiceName}, data)
					if err != nil {
						errs <- err
						return
					}
					r.ids = append(r.ids, mid)
					sent[ti].add(sub) // what was sent: after local perturbation
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	submissions := clients * perClient * len(targets)
	t.Logf("%d submissions queued in %v", submissions, time.Since(start).Round(time.Millisecond))
	if queueFirst {
		// The clock starts with the engines: queueing is each participant's own business, on
		// its own device, before it goes online.
		start = time.Now()
		startEngines()
	}
	// A thousand engines in one process on two cores answer slowly (see docs/BENCHMARKS.md,
	// survey): allow 100 ms a submission on top of three minutes.
	deadline := time.Now().Add(3*time.Minute + time.Duration(submissions)*100*time.Millisecond)
	type msg struct {
		r  *runner
		id client.MessageID
	}
	var waiting []msg
	for _, r := range runners {
		r.pending = len(r.ids)
		for _, id := range r.ids {
			waiting = append(waiting, msg{r, id})
		}
	}
	total := len(waiting)
	// When each submission's ACK arrived, and the packets it took, for the log: a slow tail
	// of retransmissions shows here.
	var acked []time.Duration
	transmissions := 0
	for len(waiting) > 0 {
		still := waiting[:0]
		for _, m := range waiting {
			st, err := m.r.e.Status(m.id)
			if err != nil {
				t.Fatal(err)
			}
			switch st.State {
			case client.StateDelivered:
				acked = append(acked, time.Since(start))
				transmissions += st.Transmissions
				if m.r.pending--; m.r.pending == 0 {
					m.r.stop()
				}
			case client.StateFailed:
				t.Fatalf("submission %s failed: %s", m.id, st.Reason)
			default:
				if time.Now().After(deadline) {
					t.Fatalf("submission %s not acknowledged in time (%d of %d acknowledged): %+v", m.id, len(acked), total, st)
				}
				still = append(still, m)
			}
		}
		waiting = still
		if len(waiting) > 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	took := time.Since(start)
	ls, ls0 := linkSum(runners, func(r *runner) *client.Engine { return r.e }), linkBase
	ls.Links -= ls0.Links
	ls.Retrieves -= ls0.Retrieves
	ls.RealPackets -= ls0.RealPackets
	ls.SendDrops -= ls0.SendDrops
	ls.Loops -= ls0.Loops
	ls.LoopsLost -= ls0.LoopsLost
	ls.Acks -= ls0.Acks
	ls.UnknownReplies -= ls0.UnknownReplies
	t.Logf("engines: %d links, %d retrieves (%.2f/s per engine during the load), %d real packets, %d lambda_P drops, %d loops (%d lost), %d acks, %d replies for unknown SURBs",
		ls.Links, ls.Retrieves, float64(ls.Retrieves)/float64(clients)/took.Seconds(), ls.RealPackets, ls.SendDrops, ls.Loops, ls.LoopsLost, ls.Acks, ls.UnknownReplies)
	q := func(f float64) time.Duration { return acked[min(len(acked)-1, int(f*float64(len(acked))))] }
	t.Logf("ACKs seen by: 50%% %v, 90%% %v, 99%% %v, all %v; %d packets for %d submissions", q(0.5).Round(time.Millisecond), q(0.9).Round(time.Millisecond), q(0.99).Round(time.Millisecond), q(1).Round(time.Millisecond), transmissions, len(acked))
	return sent, took
}

// defaultLoadRetrieveBatch is the answers per retrieve exchange of load's engines unless
// PANORAMIX_SURVEY_RETRIEVE_BATCH says otherwise (1 to wire.MaxRetrieveBatch; 1 is wire
// version 1's one item per exchange). 8 cuts the exchanges, and so the clients' upstream
// retrieve frames and the provider's reads, eightfold at the same downstream frame rate.
const defaultLoadRetrieveBatch = 8

// maxLoadRetrieveInterval bounds the interval that a batch stretches: the thousand-client
// run's clients, whose base interval is already 2.3 s, keep one item per exchange rather than
// wait 18 s for their ACKs.
const maxLoadRetrieveInterval = time.Second

// loadRetrieveBatch is the batch of load's engines at the base retrieve interval base: the
// configured one, reduced so that base times it stays within maxLoadRetrieveInterval.
func loadRetrieveBatch(t testing.TB, base time.Duration) int {
	batch := defaultLoadRetrieveBatch
	if v := os.Getenv("PANORAMIX_SURVEY_RETRIEVE_BATCH"); v != "" {
		b, err := strconv.Atoi(v)
		if err != nil || b < 1 || b > wire.MaxRetrieveBatch {
			t.Fatalf("PANORAMIX_SURVEY_RETRIEVE_BATCH=%q: want 1 to %d", v, wire.MaxRetrieveBatch)
		}
		batch = b
	}
	return max(1, min(batch, int(maxLoadRetrieveInterval/base)))
}

// linkSum adds up the link counters of the engines of rs.
func linkSum[R any](rs []R, engine func(R) *client.Engine) client.LinkState {
	var ls client.LinkState
	for _, r := range rs {
		l := engine(r).LinkState()
		ls.Links += l.Links
		ls.Retrieves += l.Retrieves
		ls.RealPackets += l.RealPackets
		ls.SendDrops += l.SendDrops
		ls.Loops += l.Loops
		ls.LoopsLost += l.LoopsLost
		ls.Acks += l.Acks
		ls.UnknownReplies += l.UnknownReplies
	}
	return ls
}

// checkStored compares the exact aggregates over the stored rows with what was sent.
func checkStored(t testing.TB, st *store.Store, sv *survey.Signed, sent *tally) {
	t.Helper()
	ctx := context.Background()
	got, _, err := st.Exact(ctx, sv.Definition.Name, store.KindCount, "")
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Int64() != sent.count {
		t.Fatalf("%d submissions stored, %d sent", got[0].Int64(), sent.count)
	}
	for i, q := range sv.Definition.Questions {
		if len(sent.hist[i]) > 0 {
			h, _, err := st.Exact(ctx, sv.Definition.Name, store.KindHistogram, q.ID)
			if err != nil {
				t.Fatal(err)
			}
			for j := range h {
				if h[j].Int64() != sent.hist[i][j] {
					t.Errorf("question %s option %d: %s stored, %d sent", q.ID, j, h[j], sent.hist[i][j])
				}
			}
			continue
		}
		s, _, err := st.Exact(ctx, sv.Definition.Name, store.KindSum, q.ID)
		if err != nil {
			t.Fatal(err)
		}
		if s[0].Cmp(sent.sums[i]) != 0 {
			t.Errorf("question %s: sum %s stored, %s sent", q.ID, s[0], sent.sums[i])
		}
	}
}

// surveyAt is a provider's survey store, opened by the test beside the provider's mixd.
type surveyAt struct {
	st     *store.Store
	domain string
}

// surveyThroughMixnet opens a survey in each provider's store, runs the load through the
// mixnet (every client submits perClient times to each survey), checks the stored rows of each
// store against what was sent to it, then checks refusals and releases at each.
func surveyThroughMixnet(t *testing.T, n *Net, stores []surveyAt, clients, perClient int) {
	ctx := context.Background()
	var targets []target
	for _, s := range stores {
		sv := commuteSurvey(t)
		if err := s.st.OpenSurvey(ctx, sv); err != nil {
			t.Fatal(err)
		}
		targets = append(targets, target{sv: sv, domain: s.domain})
	}
	sent, took := load(t, n, targets, clients, perClient, false)
	var count int64
	for i, s := range stores {
		t.Logf("%s: %d submissions stored", s.domain, sent[i].count)
		count += sent[i].count
		checkStored(t, s.st, targets[i].sv, sent[i])
	}
	t.Logf("%d submissions from %d clients stored and acknowledged in %v (%.1f/s)", count, clients, took, float64(count)/took.Seconds())
	// The stores' refusal checks are independent and wait mostly on the mixnet: they run side
	// by side (after this function returns; the caller's cleanups close the stores after them).
	for i, s := range stores {
		t.Run(s.domain, func(t *testing.T) {
			t.Parallel()
			refusals(t, n, s.st, targets[i].sv, n.Provider(s.domain), sent[i])
		})
	}
}

// refusals closes the survey sv in st, checks through the mixnet that a submission to it and a
// malformed one are refused with their reasons and that nothing stored changed, then that
// releases stop at the budget.
func refusals(t *testing.T, n *Net, st *store.Store, sv *survey.Signed, exit *Node, sent *tally) {
	ctx := context.Background()
	// The survey closes; a new submission is refused with the reason "survey commute is closed",
	// and nothing stored changes.
	if err := st.CloseSurvey(ctx, sv.Definition.Name); err != nil {
		t.Fatal(err)
	}
	pc, _ := n.PKIClient()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go pc.Run(pctx)
	lk, err := n.AddUser(exit, "late", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	e, err := client.New(client.Config{DataDir: t.TempDir(), User: "late", Domain: exit.Domain, LinkKey: lk, PKI: pc})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(pctx) }()
	defer func() { cancel(); <-done; e.Close() }()
	send := func(data []byte) client.Status {
		mid, err := e.Send(ctx, client.Destination{Domain: exit.Domain, Recipient: sv.Definition.Name, Service: survey.ServiceName}, data)
		if err != nil {
			t.Fatal(err)
		}
		// A lost first packet is sent again only after its deadline (AckSlack 30 s and the
		// route's delays), and a loaded CI machine may lose one: allow three rounds.
		deadline := time.Now().Add(3 * time.Minute)
		for {
			s, err := e.Status(mid)
			if err != nil {
				t.Fatal(err)
			}
			if s.State.Finished() || time.Now().After(deadline) {
				return s
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	sub, _ := survey.NewSubmission(sv, survey.SubmissionID{1}, []survey.Answer{{Type: survey.Categorical, Value: 0}, {Type: survey.Integer, Value: 1}, {Type: survey.Real, Value: 1}, {Type: survey.Boolean, Value: 0}}, dp.NewSampler(nil))
	data, _ := sub.Marshal()
	if s := send(data); s.State != client.StateFailed || string(s.Answer) != "survey commute is closed" {
		t.Errorf("%s: submission to a closed survey: %s %q %q", exit.Domain, s.State, s.Reason, s.Answer)
	}
	if s := send(bytes.Repeat([]byte{9}, 40)); s.State != client.StateFailed || s.Reason != "fragment 0: refused as malformed" {
		t.Errorf("%s: malformed submission: %s %q", exit.Domain, s.State, s.Reason)
	}
	checkStored(t, st, sv, sent)

	// Releases: the budget of 2 allows a histogram and a mean at ε = 1, and nothing more.
	smp := dp.NewSampler(nil)
	if _, err := st.Release(ctx, sv.Definition.Name, store.Request{Kind: store.KindHistogram, Question: "mode", Epsilon: dp.EpsilonUnit}, smp); err != nil {
		t.Fatal(err)
	}
	r, err := st.Release(ctx, sv.Definition.Name, store.Request{Kind: store.KindMean, Question: "minutes", Epsilon: dp.EpsilonUnit}, smp)
	if err != nil || r.Remaining != 0 {
		t.Fatalf("mean: %+v %v", r, err)
	}
	if _, err := st.Release(ctx, sv.Definition.Name, store.Request{Kind: store.KindCount, Epsilon: 1}, smp); err == nil {
		t.Errorf("%s: release over the budget", exit.Domain)
	}
}

// TestSurveyThroughMixnetIntoSQLiteAndPostgres is the acceptance load of issue 9: 1,000 client
// engines in this process, each submitting once to a survey at alpha.localhost, whose survey
// service stores into its embedded SQLite file, and once to a survey at beta.localhost, whose
// survey service stores into a real PostgreSQL started by the test; through the real binaries
// in one network. The exact aggregates over each store's rows must match what was sent to it.
func TestSurveyThroughMixnetIntoSQLiteAndPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binaries")
	}
	start := time.Now()
	dsn := storetest.StartPostgres(t)
	n := surveyNetPostgres(t, thousandLambdaP, thousandLambdaCover, map[string]string{"beta.localhost": dsn})
	t.Logf("PostgreSQL and the network up in %v", time.Since(start).Round(time.Millisecond))
	alpha := n.Provider("alpha.localhost")
	// Closed by cleanups, after the parallel subtests of surveyThroughMixnet.
	lite, err := store.Open(context.Background(), store.SQLite, filepath.Join(alpha.DataDir, "survey.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	pg, err := store.Open(context.Background(), store.Postgres, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	surveyThroughMixnet(t, n, []surveyAt{{lite, "alpha.localhost"}, {pg, "beta.localhost"}}, 1000, 1)
}

// Rates of the thousand-client run: together the clients offer 1000 * lambda_P packets a
// second (submission or drop decoy) and 2 * 1000 * lambda_cover loop and drop cover packets.
const (
	thousandLambdaP     = 0.2
	thousandLambdaCover = 0.02
)

// BenchmarkSurveyEndToEnd is the sustained rate of submissions from client to stored row and
// back to the client's ACK, through the real binaries on this machine, as a ratio of the
// ceiling measured in the same run: the Sphinx work of those submissions alone on all cores
// (sphinxWork), before and after the load, with the network up and idle. clients engines (half
// at each provider, 10 unless PANORAMIX_SURVEY_CLIENTS says otherwise) send at lambda_P each
// (PANORAMIX_SURVEY_LAMBDA_P, 40/s unless set), with loop and drop cover traffic at 1/s each,
// into the exit provider's SQLite store. Every client queues its share of the b.N submissions
// before the engines start (load's queueFirst), and the clock runs from the engines' start to
// the last acknowledgement.
//
// The simulated clients' stores (one bbolt file each, an fsync per Send, per packet sent and
// per item retrieved) would share this machine's one disk with the daemons, which real
// participants, each on their own device, do not: they go to /dev/shm unless
// PANORAMIX_LOAD_CLIENT_DIR names another directory (the daemons' stores stay on disk); their
// CPU cost is still counted. docs/BENCHMARKS.md, survey, has the figures.
func BenchmarkSurveyEndToEnd(b *testing.B) {
	clients := 10
	if v := os.Getenv("PANORAMIX_SURVEY_CLIENTS"); v != "" {
		c, err := strconv.Atoi(v)
		if err != nil || c < 1 {
			b.Fatalf("PANORAMIX_SURVEY_CLIENTS=%q: want a positive integer", v)
		}
		clients = c
	}
	lambdaP := 40.0
	if v := os.Getenv("PANORAMIX_SURVEY_LAMBDA_P"); v != "" {
		l, err := strconv.ParseFloat(v, 64)
		if err != nil || l <= 0 {
			b.Fatalf("PANORAMIX_SURVEY_LAMBDA_P=%q: want a positive rate", v)
		}
		lambdaP = l
	}
	if os.Getenv("PANORAMIX_LOAD_CLIENT_DIR") == "" {
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			b.Setenv("PANORAMIX_LOAD_CLIENT_DIR", "/dev/shm")
		}
	}
	n := surveyNet(b, lambdaP)
	exit := n.Provider("alpha.localhost")
	st, err := store.Open(context.Background(), store.SQLite, filepath.Join(exit.DataDir, "survey.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	sv := commuteSurvey(b)
	if err := st.OpenSurvey(context.Background(), sv); err != nil {
		b.Fatal(err)
	}
	work := newSphinxWork(b, n.Parameters().Geometry, sv)
	b.Run("sqlite", func(b *testing.B) {
		per := (b.N + clients - 1) / clients
		// The framework's first call (b.N = 1) only probes: no ceiling for it.
		probe := b.N == 1
		var before, after float64
		var cpuBefore, cpuAfter time.Duration
		if !probe {
			before, cpuBefore = work.ceiling(b, ceilingTime)
		}
		m0 := surveyCommits(b, exit)
		cpu0 := netCPU(b, n)
		sent, took := load(b, n, []target{{sv, exit.Domain}}, clients, per, true)
		// The CPU of the load's whole span, engines' creation and stop included (a few ms).
		cpu := netCPU(b, n) - cpu0
		rate := float64(sent[0].count) / took.Seconds()
		cpuPer := cpu / time.Duration(sent[0].count)
		b.Logf("%d submissions in %v: %.1f/s; %v CPU each (daemons and this process)", sent[0].count, took, rate, cpuPer.Round(time.Microsecond))
		if m := surveyCommits(b, exit).minus(m0); m.commits > 0 {
			b.Logf("survey service: %.0f commits, %.1f submissions and %.2f ms each on average", m.commits, m.submissions/m.commits, 1000*m.seconds/m.commits)
		}
		b.ReportMetric(rate, "submissions/s")
		if probe {
			return
		}
		after, cpuAfter = work.ceiling(b, ceilingTime)
		ceiling := (before + after) / 2
		b.Logf("Sphinx ceiling: %.1f submissions/s before the load (%v CPU each), %.1f/s after (%v CPU each)", before, cpuBefore.Round(time.Microsecond), after, cpuAfter.Round(time.Microsecond))
		b.ReportMetric(ceiling, "ceiling-submissions/s")
		b.ReportMetric(rate/ceiling, "ratio")
		// The same ratio in CPU time: the Sphinx work's share of what a submission costs the
		// whole network and its clients. Other jobs on the machine change it much less than the
		// wall-time ratio, since they slow the ceiling and the load unevenly.
		b.ReportMetric(float64((cpuBefore+cpuAfter)/2)/float64(cpuPer), "cpu-ratio")
	})
}

// ceilingTime is how long BenchmarkSurveyEndToEnd measures the ceiling, before and after.
const ceilingTime = 3 * time.Second

// sphinxWork is the Sphinx work of one acknowledged submission as the network does it, for
// the ceiling BenchmarkSurveyEndToEnd compares its rate with: the client makes a SURB back to
// its queue (one mix per layer, then its provider: four hops) and a packet carrying it and the
// submission's fragment (its provider, one mix per layer, the exit provider: five hops); the
// five hops unwrap the packet; the exit provider decodes the envelope and makes the ACK's
// packet from the SURB; the four hops of the SURB unwrap it; the client reads the reply and
// parses the ACK. Same geometry, route lengths, envelope and ACK as the network in the run;
// the keys are fresh ones of the same kind, which cost the same. Links, storage, retrieves,
// cover traffic and scheduling are left out: they are what the ratio shows the cost of.
type sphinxWork struct {
	s         *sphinx.Sphinx
	g         sphinx.Geometry
	fwdKeys   []*keys.SphinxPrivateKey
	backKeys  []*keys.SphinxPrivateKey
	fwd, back []sphinx.Hop
	fragment  []byte
}

func newSphinxWork(tb testing.TB, g sphinx.Geometry, sv *survey.Signed) *sphinxWork {
	tb.Helper()
	s, err := sphinx.New(g)
	if err != nil {
		tb.Fatal(err)
	}
	w := &sphinxWork{s: s, g: g}
	route := func(n int) ([]*keys.SphinxPrivateKey, []sphinx.Hop) {
		ks := make([]*keys.SphinxPrivateKey, n)
		hops := make([]sphinx.Hop, n)
		for i := range ks {
			k, err := keys.GenerateSphinxKey(rand.Reader)
			if err != nil {
				tb.Fatal(err)
			}
			ks[i] = k
			hops[i] = sphinx.Hop{PublicKey: k.Public(), DelayMS: 10}
			rand.Read(hops[i].ID[:])
		}
		return ks, hops
	}
	w.fwdKeys, w.fwd = route(5)
	w.backKeys, w.back = route(4)
	id, err := survey.NewSubmissionID(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	sub, err := survey.NewSubmission(sv, id, []survey.Answer{{Type: survey.Categorical, Value: 1}, {Type: survey.Integer, Value: 30}, {Type: survey.Real, Value: 120}, {Type: survey.Boolean, Value: 1}}, dp.NewSampler(nil))
	if err != nil {
		tb.Fatal(err)
	}
	data, err := sub.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	frags, err := client.Split(client.MessageID{1}, data, client.FragmentCapacity(g))
	if err != nil {
		tb.Fatal(err)
	}
	w.fragment = frags[0].Marshal()
	return w
}

// one does the work of one submission and checks that the client reads the ACK.
func (w *sphinxWork) one() error {
	var id [sphinx.SURBIDSize]byte
	rand.Read(id[:])
	surb, rk, err := w.s.NewSURB(rand.Reader, w.back, sphinx.Recipient{Service: "queue", ID: "p1-0000"}, id)
	if err != nil {
		return err
	}
	env, err := service.EncodeEnvelope(w.g.PayloadSize, w.g.SURBSize(), surb, w.fragment)
	if err != nil {
		return err
	}
	pkt, err := w.s.NewPacket(rand.Reader, w.fwd, sphinx.Recipient{Service: survey.ServiceName, ID: "commute"}, env)
	if err != nil {
		return err
	}
	var u *sphinx.Unwrapped
	for _, k := range w.fwdKeys {
		if u, err = w.s.Unwrap(k, pkt); err != nil {
			return err
		}
		pkt = u.Packet
	}
	surb, data, err := service.DecodeEnvelope(u.Payload, w.g.SURBSize())
	if err != nil {
		return err
	}
	f, err := client.ParseFragment(data, client.FragmentCapacity(w.g))
	if err != nil {
		return err
	}
	ack := client.Ack{ID: f.ID, Index: f.Index, Status: client.AckStored}
	if env, err = service.EncodeEnvelope(w.g.PayloadSize, w.g.SURBSize(), nil, ack.Marshal()); err != nil {
		return err
	}
	_, reply, err := w.s.NewPacketFromSURB(surb, env)
	if err != nil {
		return err
	}
	for _, k := range w.backKeys {
		if u, err = w.s.Unwrap(k, reply); err != nil {
			return err
		}
		reply = u.Packet
	}
	plain, err := w.s.ReadReply(rk, u.Payload)
	if err != nil {
		return err
	}
	if _, data, err = service.DecodeEnvelope(plain, w.g.SURBSize()); err != nil {
		return err
	}
	a, err := client.ParseAck(data)
	if err != nil {
		return err
	}
	if a.ID != f.ID || a.Status != client.AckStored {
		return fmt.Errorf("ceiling: ack %+v for message %s", a, f.ID)
	}
	return nil
}

// ceiling runs w on every core (GOMAXPROCS goroutines) for d and returns the submissions per
// second and the process's CPU time per submission.
func (w *sphinxWork) ceiling(tb testing.TB, d time.Duration) (float64, time.Duration) {
	tb.Helper()
	var done atomic.Int64
	var failed atomic.Pointer[error]
	c0 := processCPU(tb)
	start := time.Now()
	stop := start.Add(d)
	var wg sync.WaitGroup
	// Labelled, so that a -cpuprofile of the benchmark tells the ceiling from the load.
	pprof.Do(context.Background(), pprof.Labels("part", "ceiling"), func(context.Context) {
		for range runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					if err := w.one(); err != nil {
						failed.Store(&err)
						return
					}
					done.Add(1)
				}
			}()
		}
	})
	wg.Wait()
	took := time.Since(start)
	cpu := processCPU(tb) - c0
	if err := failed.Load(); err != nil {
		tb.Fatal(*err)
	}
	return float64(done.Load()) / took.Seconds(), cpu / time.Duration(done.Load())
}

// processCPU is the CPU time (user and system, all threads) this process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// commits is what a provider's survey service reports of its group commits (docs/spec/survey.md,
// metrics): how many, the submissions they took and the seconds they took, since it started.
type commits struct{ commits, submissions, seconds float64 }

func (c commits) minus(d commits) commits {
	return commits{c.commits - d.commits, c.submissions - d.submissions, c.seconds - d.seconds}
}

// surveyCommits reads the survey service's commit histograms from nd's metrics endpoint.
func surveyCommits(tb testing.TB, nd *Node) commits {
	tb.Helper()
	resp, err := http.Get("http://" + nd.Metrics + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	var c commits
	for _, line := range strings.Split(string(body), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		switch name {
		case "mixd_survey_commit_submissions_count":
			c.commits = f
		case "mixd_survey_commit_submissions_sum":
			c.submissions = f
		case "mixd_survey_commit_seconds_sum":
			c.seconds = f
		}
	}
	return c
}

// netCPU is the CPU time (user and system) used so far by this process and by every daemon of
// n: the load's engines, the mixes, the providers and the directory.
func netCPU(tb testing.TB, n *Net) time.Duration {
	tb.Helper()
	total := processCPU(tb)
	for _, p := range n.procs() {
		pid := p.Pid()
		if pid == 0 {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			tb.Fatal(err)
		}
		// Fields 14 and 15 (utime, stime, in clock ticks of 1/100 s on Linux) follow the
		// command name, which is in parentheses and may hold spaces.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			tb.Fatalf("/proc/%d/stat: %q", pid, b)
		}
		for _, v := range f[11:13] {
			ticks, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			total += time.Duration(ticks) * 10 * time.Millisecond
		}
	}
	return total
}
