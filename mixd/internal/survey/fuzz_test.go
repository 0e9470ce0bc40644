package survey

import (
	"bytes"
	"context"
	"encoding/hex"
	"flag"
	"path/filepath"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/dp"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/service/servicetest"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	format "github.com/panoramix-mixnet/panoramix/pkg/survey"
	"github.com/panoramix-mixnet/panoramix/pkg/survey/store"
)

// updateSeeds rewrites testdata/deliver.json (only on purpose):
// go test ./mixd/internal/survey -run TestDeliverSeeds -update-seeds
var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/deliver.json")

const seedsFile = "testdata/deliver.json"

// seedSurvey is the fixed survey the seeds are made for (its id is in every submission), open
// until 2096.
func seedSurvey(tb testing.TB) *format.Signed {
	k, err := keys.NewIdentityPrivateKey(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	defer k.Wipe()
	sv, err := format.Sign(&format.Definition{Name: "poll", Title: "Poll", Collector: k.Public(), Opens: 0, Closes: 4_000_000_000, Budget: dp.EpsilonUnit,
		Questions: []format.Question{
			{ID: "color", Text: "?", Type: format.Categorical, Options: []string{"red", "green"}},
			{ID: "age", Text: "?", Type: format.Integer, Lo: 18, Hi: 99},
		}}, k)
	if err != nil {
		tb.Fatal(err)
	}
	return sv
}

// runningService is a survey service with its writer running, on a fresh store holding the
// seed survey.
func runningService(tb testing.TB) (*Service, *store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, store.SQLite, filepath.Join(tb.TempDir(), "survey.db"))
	if err != nil {
		tb.Fatal(err)
	}
	svc, err := New(Config{Store: st, Geometry: sphinx.DefaultGeometry()})
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
		st.Close()
	})
	if err := st.OpenSurvey(ctx, seedSurvey(tb)); err != nil {
		tb.Fatal(err)
	}
	return svc, st
}

func writeSeeds(t *testing.T) {
	sv := seedSurvey(t)
	g := sphinx.DefaultGeometry()
	frag := func(id byte, data []byte) []byte {
		frags, err := client.Split(client.MessageID{id}, data, client.FragmentCapacity(g))
		if err != nil {
			t.Fatal(err)
		}
		return frags[0].Marshal()
	}
	sub := func(sid byte, color, age int64) []byte {
		b, err := (&format.Submission{Survey: sv.ID(), ID: format.SubmissionID{sid}, Answers: []format.Answer{{Type: format.Categorical, Value: color}, {Type: format.Integer, Value: age}}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	seeds := []servicetest.DeliverSeed{
		{Name: "stored", Recipient: "poll", Data: hex.EncodeToString(frag(1, sub(1, 1, 30))), Expect: "stored"},
		{Name: "malformed fragment", Recipient: "poll", Data: hex.EncodeToString(append(frag(2, sub(2, 0, 20)), 0)), Expect: "malformed"},
		{Name: "malformed data", Recipient: "poll", Data: hex.EncodeToString(frag(3, []byte("not a submission"))), Expect: "malformed"},
		{Name: "out of bounds", Recipient: "poll", Data: hex.EncodeToString(frag(4, sub(4, 0, 100))), Expect: "malformed"},
		{Name: "no such option", Recipient: "poll", Data: hex.EncodeToString(frag(5, sub(5, 2, 20))), Expect: "malformed"},
		{Name: "unknown survey", Recipient: "other", Data: hex.EncodeToString(frag(6, sub(6, 0, 20))), Expect: "unknown_recipient"},
		{Name: "bad name", Recipient: "Poll!", Data: hex.EncodeToString(frag(7, sub(7, 0, 20))), Expect: "unknown_recipient"},
		{Name: "too large", Recipient: "poll", Data: hex.EncodeToString(frag(8, make([]byte, format.MaxSubmissionSize+1))), Expect: "too_large"},
		{Name: "too short to answer", Recipient: "poll", Data: "0102", Expect: "none"},
	}
	servicetest.WriteSeeds(t, seedsFile, seeds)
}

// deliverOnce hands data to the service and returns its answer: "none", or the ACK's status.
// Whatever the bytes, the service answers at most once, for the message and fragment the bytes
// name, and fails only if the service itself fails.
func deliverOnce(tb testing.TB, svc *Service, recipient string, data []byte) (string, *client.Ack) {
	r := &replier{can: true}
	if err := svc.Deliver(context.Background(), &service.Request{Recipient: recipient, Data: data}, r); err != nil {
		tb.Fatalf("Deliver failed: %v", err)
	}
	// A valid submission is answered by the writer after its commit.
	flush(tb, svc)
	acks := r.answers()
	if len(acks) > 1 {
		tb.Fatalf("%d answers to one fragment", len(acks))
	}
	var a *client.Ack
	if len(acks) == 1 {
		a = acks[0]
	}
	return servicetest.CheckAnswer(tb, data, a), a
}

func TestDeliverSeeds(t *testing.T) {
	if *updateSeeds {
		writeSeeds(t)
	}
	seeds := servicetest.LoadSeeds(t, seedsFile)
	if len(seeds) < 5 {
		t.Fatalf("%s has %d seeds", seedsFile, len(seeds))
	}
	svc, _ := runningService(t)
	for _, s := range seeds {
		data, err := hex.DecodeString(s.Data)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if got, _ := deliverOnce(t, svc, s.Recipient, data); got != s.Expect {
			t.Errorf("%s: answered %q, want %q", s.Name, got, s.Expect)
		}
	}
}

// FuzzDeliver: any payload a final hop delivers to the survey service, for any recipient id,
// gets at most one answer, for the fragment it names; a row is stored only for an answer
// "stored", and then the store has that submission.
func FuzzDeliver(f *testing.F) {
	for _, s := range servicetest.LoadSeeds(f, seedsFile) {
		data, err := hex.DecodeString(s.Data)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s.Recipient, data)
	}
	svc, st := runningService(f)
	ctx := context.Background()
	rows := func(t *testing.T) int64 {
		n, _, err := st.Exact(ctx, "poll", store.KindCount, "")
		if err != nil {
			t.Fatal(err)
		}
		return n[0].Int64()
	}
	f.Fuzz(func(t *testing.T, recipient string, data []byte) {
		before := rows(t)
		got, _ := deliverOnce(t, svc, recipient, data)
		after := rows(t)
		if got != "stored" {
			if after != before {
				t.Fatalf("answered %q but stored a row", got)
			}
			return
		}
		if after > before+1 {
			t.Fatalf("one fragment stored %d rows", after-before)
		}
		fr, err := client.ParseFragment(data, client.FragmentCapacity(sphinx.DefaultGeometry()))
		if err != nil {
			t.Fatalf("stored a fragment that does not parse: %v", err)
		}
		sub, err := format.ParseSubmission(fr.Data)
		if err != nil {
			t.Fatalf("stored a submission that does not parse: %v", err)
		}
		if has, err := st.Has(ctx, recipient, sub.ID); err != nil || !has {
			t.Fatalf("answered stored, but the store does not have the submission (%v)", err)
		}
	})
}
