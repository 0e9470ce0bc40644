package survey

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/dp"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	format "github.com/panoramix-mixnet/panoramix/pkg/survey"
	"github.com/panoramix-mixnet/panoramix/pkg/survey/store"
)

type replier struct {
	mu   sync.Mutex
	can  bool
	acks []*client.Ack
}

func (r *replier) CanReply() bool { return r.can }
func (r *replier) Reply(_ context.Context, b []byte) error {
	a, err := client.ParseAck(b)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.acks = append(r.acks, a)
	r.mu.Unlock()
	return nil
}

type fixture struct {
	t   *testing.T
	st  *store.Store
	svc *Service
	sv  *format.Signed
	g   sphinx.Geometry
	reg *prometheus.Registry
}

func newFixture(t *testing.T) *fixture {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, store.SQLite, filepath.Join(t.TempDir(), "survey.db"))
	if err != nil {
		t.Fatal(err)
	}
	g := sphinx.DefaultGeometry()
	reg := prometheus.NewRegistry()
	svc, err := New(Config{Store: st, Geometry: g, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		st.Close()
	})
	k, _ := keys.NewIdentityPrivateKey(bytes.Repeat([]byte{5}, 32))
	defer k.Wipe()
	now := uint64(time.Now().Unix())
	sv, err := format.Sign(&format.Definition{Name: "poll", Title: "Poll", Collector: k.Public(), Opens: now - 100, Closes: now + 3600, Budget: dp.EpsilonUnit,
		Questions: []format.Question{
			{ID: "color", Text: "?", Type: format.Categorical, Options: []string{"red", "green"}},
			{ID: "age", Text: "?", Type: format.Integer, Lo: 18, Hi: 99},
		}}, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.OpenSurvey(ctx, sv); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, st: st, svc: svc, sv: sv, g: g, reg: reg}
}

// fragment wraps data as the single fragment of message id.
func (f *fixture) fragment(id byte, data []byte) []byte {
	frags, err := client.Split(client.MessageID{id}, data, client.FragmentCapacity(f.g))
	if err != nil {
		f.t.Fatal(err)
	}
	return frags[0].Marshal()
}

func (f *fixture) submission(sid byte, color, age int64) []byte {
	b, err := (&format.Submission{Survey: f.sv.ID(), ID: format.SubmissionID{sid}, Answers: []format.Answer{{Type: format.Categorical, Value: color}, {Type: format.Integer, Value: age}}}).Marshal()
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// flush waits until every submission delivered so far is committed and answered.
func flush(tb testing.TB, svc *Service) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := svc.flush(ctx); err != nil {
		tb.Fatal(err)
	}
}

// answers returns the answers r has got.
func (r *replier) answers() []*client.Ack {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*client.Ack(nil), r.acks...)
}

// deliver sends data to recipient and returns the single ack, once the service has answered
// everything delivered before.
func (f *fixture) deliver(recipient string, data []byte) *client.Ack {
	f.t.Helper()
	r := &replier{can: true}
	if err := f.svc.Deliver(context.Background(), &service.Request{Recipient: recipient, Data: data}, r); err != nil {
		f.t.Fatal(err)
	}
	flush(f.t, f.svc)
	acks := r.answers()
	if len(acks) != 1 {
		f.t.Fatalf("%d acks", len(acks))
	}
	return acks[0]
}

func (f *fixture) count() int64 {
	n, _, err := f.st.Exact(context.Background(), "poll", store.KindCount, "")
	if err != nil {
		f.t.Fatal(err)
	}
	return n[0].Int64()
}

func TestDeliver(t *testing.T) {
	f := newFixture(t)
	a := f.deliver("poll", f.fragment(1, f.submission(1, 1, 30)))
	if a.Status != client.AckStored || a.ID != (client.MessageID{1}) || a.Index != 0 {
		t.Fatalf("ack %+v", a)
	}
	// The retransmitted fragment, and the same submission in a new message: duplicates.
	for _, mid := range []byte{1, 2} {
		if a := f.deliver("poll", f.fragment(mid, f.submission(1, 1, 30))); a.Status != client.AckStored {
			t.Fatalf("duplicate: %v", a.Status)
		}
	}
	if n := f.count(); n != 1 {
		t.Fatalf("%d rows after duplicates", n)
	}
	refusals := map[string]struct {
		recipient string
		data      []byte
		status    client.AckStatus
	}{
		"malformed fragment": {"poll", append(f.fragment(3, f.submission(3, 0, 20)), 0), client.AckMalformed},
		"malformed data":     {"poll", f.fragment(3, []byte("not a submission")), client.AckMalformed},
		"out of bounds":      {"poll", f.fragment(3, f.submission(3, 0, 100)), client.AckMalformed},
		"no such option":     {"poll", f.fragment(3, f.submission(3, 2, 20)), client.AckMalformed},
		"unknown survey":     {"other", f.fragment(3, f.submission(3, 0, 20)), client.AckUnknownRecipient},
		"bad name":           {"Poll!", f.fragment(3, f.submission(3, 0, 20)), client.AckUnknownRecipient},
		"too large":          {"poll", f.fragment(3, make([]byte, format.MaxSubmissionSize+1)), client.AckTooLarge},
	}
	for name, tc := range refusals {
		if a := f.deliver(tc.recipient, tc.data); a.Status != tc.status || a.ID != (client.MessageID{3}) {
			t.Errorf("%s: %v", name, a.Status)
		}
	}
	// A fragment too short to name its message gets no answer at all.
	r := &replier{can: true}
	if err := f.svc.Deliver(context.Background(), &service.Request{Recipient: "poll", Data: []byte{1, 2}}, r); err != nil || len(r.acks) != 0 {
		t.Errorf("short fragment: %v %d acks", err, len(r.acks))
	}
	if n := f.count(); n != 1 {
		t.Fatalf("refusals stored rows: %d", n)
	}
	// Without a SURB the submission is stored, and nothing answered.
	r = &replier{}
	if err := f.svc.Deliver(context.Background(), &service.Request{Recipient: "poll", Data: f.fragment(4, f.submission(4, 0, 40))}, r); err != nil {
		t.Fatalf("no SURB: %v", err)
	}
	flush(t, f.svc)
	if n := len(r.answers()); n != 0 {
		t.Fatalf("no SURB: %d answers", n)
	}
	if n := f.count(); n != 2 {
		t.Fatalf("%d rows", n)
	}
}

func TestClosedSurvey(t *testing.T) {
	f := newFixture(t)
	if a := f.deliver("poll", f.fragment(1, f.submission(1, 0, 20))); a.Status != client.AckStored {
		t.Fatal(a.Status)
	}
	if err := f.st.CloseSurvey(context.Background(), "poll"); err != nil {
		t.Fatal(err)
	}
	if a := f.deliver("poll", f.fragment(2, f.submission(2, 0, 20))); a.Status != client.AckRefused || string(a.Answer) != "survey poll is closed" {
		t.Errorf("closed survey: %v %q", a.Status, a.Answer)
	}
	if a := f.deliver("poll", f.fragment(1, f.submission(1, 0, 20))); a.Status != client.AckStored {
		t.Errorf("retransmission after closing: %v", a.Status)
	}
	// Past the definition's closing time.
	f.svc.now = func() time.Time { return time.Unix(int64(f.sv.Definition.Closes), 0) }
	if a := f.deliver("poll", f.fragment(3, f.submission(3, 0, 20))); a.Status != client.AckRefused || string(a.Answer) != "survey poll is closed" {
		t.Errorf("after closes: %v %q", a.Status, a.Answer)
	}
	if a := f.deliver("poll", f.fragment(1, f.submission(1, 0, 20))); a.Status != client.AckStored {
		t.Errorf("retransmission after closes: %v", a.Status)
	}
	// Before the definition's opening time.
	f.svc.now = func() time.Time { return time.Unix(int64(f.sv.Definition.Opens)-1, 0) }
	want := "survey poll is not open yet (it opens at " + time.Unix(int64(f.sv.Definition.Opens), 0).UTC().Format(time.RFC3339) + ")"
	if a := f.deliver("poll", f.fragment(4, f.submission(4, 0, 20))); a.Status != client.AckRefused || string(a.Answer) != want {
		t.Errorf("before opens: %v %q", a.Status, a.Answer)
	}
	// Without a SURB a refusal is silent.
	r := &replier{}
	if err := f.svc.Deliver(context.Background(), &service.Request{Recipient: "poll", Data: f.fragment(5, f.submission(5, 0, 20))}, r); err != nil {
		t.Errorf("closed, no SURB: %v", err)
	}
	flush(t, f.svc)
	if n := len(r.answers()); n != 0 {
		t.Errorf("closed, no SURB: %d acks", n)
	}
	if n := f.count(); n != 1 {
		t.Fatalf("%d rows", n)
	}
}

// Many concurrent deliveries share commits and each is acknowledged once, stored once.
func TestConcurrentDeliveries(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	rs := make([]*replier, 200)
	for i := range rs {
		rs[i] = &replier{can: true}
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := f.fragment(byte(i), f.submission(byte(i), int64(i%2), 18+int64(i%80)))
			if err := f.svc.Deliver(context.Background(), &service.Request{Recipient: "poll", Data: data}, rs[i]); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	flush(t, f.svc)
	for i, r := range rs {
		if a := r.answers(); len(a) != 1 || a[0].Status != client.AckStored || a[0].ID != (client.MessageID{byte(i)}) {
			t.Fatalf("delivery %d: answers %+v", i, a)
		}
	}
	if n := f.count(); n != 200 {
		t.Fatalf("%d rows", n)
	}
	// 200 deliveries at once do not take 200 commits.
	if c := f.metric("mixd_survey_commit_submissions", ""); c >= 200 {
		t.Errorf("%v commits for 200 submissions delivered at once", c)
	}
}

// A second Run is refused at once and leaves the first one writing.
func TestRunOnce(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The fixture's Run starts in a goroutine: wait until it holds the
	// writer, or this Run could win the race and be the first.
	for !f.svc.ran.Load() {
		if ctx.Err() != nil {
			t.Fatal("the fixture's Run never started")
		}
		time.Sleep(time.Millisecond)
	}
	if err := f.svc.Run(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("second Run: %v (returned after its context ended: %v)", err, ctx.Err())
	}
	if a := f.deliver("poll", f.fragment(1, f.submission(1, 0, 30))); a.Status != client.AckStored {
		t.Fatalf("after a refused second Run: %s", a.Status)
	}
}

func TestNewRefusals(t *testing.T) {
	if _, err := New(Config{Geometry: sphinx.DefaultGeometry()}); err == nil {
		t.Error("no store")
	}
	st, err := store.Open(context.Background(), store.SQLite, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := New(Config{Store: st, Geometry: sphinx.Geometry{Hops: 5, PayloadSize: 1024}}); err == nil {
		t.Error("geometry too small for a submission")
	}
}

// Without the writer, Deliver queues up to maxBatch submissions unanswered, then gives up when
// its context ends: the queue, and what the service holds, is bounded.
func TestDeliverWithoutWriter(t *testing.T) {
	f := newFixture(t)
	svc, _ := New(Config{Store: f.st, Geometry: f.g})
	r := &replier{can: true}
	for i := range maxBatch {
		data := f.fragment(byte(i), f.submission(byte(i), 0, 20))
		if err := svc.Deliver(context.Background(), &service.Request{Recipient: "poll", Data: data}, r); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := svc.Deliver(ctx, &service.Request{Recipient: "poll", Data: f.fragment(9, f.submission(9, 0, 20))}, r)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("delivery past the queue: %v", err)
	}
	if n := len(r.answers()); n != 0 {
		t.Errorf("%d answers without a writer", n)
	}
	if n := f.count(); n != 0 {
		t.Errorf("%d rows without a writer", n)
	}
}

// metric returns the value of the counter, or the sample count of the histogram, name with
// the given reason label ("" for none).
func (f *fixture) metric(name, reason string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			label := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					label = l.GetValue()
				}
			}
			if label != reason {
				continue
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	f.t.Fatalf("no metric %s{reason=%q}", name, reason)
	return 0
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	f.deliver("poll", f.fragment(1, f.submission(1, 0, 20)))
	f.deliver("poll", f.fragment(2, f.submission(1, 0, 20)))
	f.deliver("poll", f.fragment(3, f.submission(3, 0, 100)))
	f.deliver("poll", f.fragment(3, []byte("junk")))
	f.deliver("other", f.fragment(4, f.submission(4, 0, 20)))
	f.deliver("poll", f.fragment(5, make([]byte, format.MaxSubmissionSize+1)))
	if err := f.st.CloseSurvey(context.Background(), "poll"); err != nil {
		t.Fatal(err)
	}
	f.deliver("poll", f.fragment(6, f.submission(6, 0, 20)))
	f.svc.now = func() time.Time { return time.Unix(int64(f.sv.Definition.Opens)-1, 0) }
	f.deliver("poll", f.fragment(7, f.submission(7, 0, 20)))
	for _, c := range []struct {
		name, reason string
		want         float64
	}{
		{"mixd_survey_submissions_stored_total", "", 1},
		{"mixd_survey_duplicate_submissions_total", "", 1},
		{"mixd_survey_refusals_total", reasonMalformed, 2},
		{"mixd_survey_refusals_total", reasonUnknownSurvey, 1},
		{"mixd_survey_refusals_total", reasonTooLarge, 1},
		{"mixd_survey_refusals_total", reasonClosed, 1},
		{"mixd_survey_refusals_total", reasonNotOpen, 1},
		// Commits: the stored one, the duplicate, the one refused by the closed survey.
		{"mixd_survey_commit_seconds", "", 3},
		{"mixd_survey_commit_submissions", "", 3},
	} {
		if got := f.metric(c.name, c.reason); got != c.want {
			t.Errorf("%s{reason=%q} = %v, want %v", c.name, c.reason, got, c.want)
		}
	}
}
