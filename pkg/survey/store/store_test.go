package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/dp"
	"github.com/panoramix-mixnet/panoramix/pkg/dp/dptest"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/survey"
	"github.com/panoramix-mixnet/panoramix/pkg/survey/store/storetest"
)

// backends runs f against a fresh SQLite store and a fresh PostgreSQL store.
func backends(t *testing.T, f func(t *testing.T, open func() *Store)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "survey.db")
		f(t, func() *Store {
			s, err := Open(context.Background(), SQLite, path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		})
	})
	t.Run("postgres", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts a PostgreSQL server")
		}
		dsn := storetest.StartPostgres(t)
		f(t, func() *Store {
			s, err := Open(context.Background(), Postgres, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		})
	})
}

func signedSurvey(t testing.TB, name string) (*survey.Signed, *keys.IdentityPrivateKey) {
	k, err := keys.NewIdentityPrivateKey(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	d := &survey.Definition{
		Name: name, Title: "t", Collector: k.Public(), Opens: 0, Closes: 4_000_000_000, Budget: 2 * dp.EpsilonUnit,
		Questions: []survey.Question{
			{ID: "mode", Text: "?", Type: survey.Categorical, Options: []string{"car", "bike", "train"}},
			{ID: "minutes", Text: "?", Type: survey.Integer, Lo: 0, Hi: 180},
			{ID: "remote", Text: "?", Type: survey.Boolean},
			{ID: "km", Text: "?", Type: survey.Real, Decimals: 1, Lo: -10, Hi: 1005, LocalEpsilon: dp.EpsilonUnit},
		},
	}
	sv, err := survey.Sign(d, k)
	if err != nil {
		t.Fatal(err)
	}
	return sv, k
}

func item(t testing.TB, sv *survey.Signed, id byte, mode, minutes, remote, km int64) Item {
	sub := &survey.Submission{Survey: sv.ID(), ID: survey.SubmissionID{id, 0xaa}, Answers: []survey.Answer{
		{Type: survey.Categorical, Value: mode}, {Type: survey.Integer, Value: minutes}, {Type: survey.Boolean, Value: remote}, {Type: survey.Real, Value: km},
	}}
	if err := sub.Validate(sv); err != nil {
		t.Fatal(err)
	}
	raw, err := sub.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return Item{Survey: sv.Definition.Name, Submission: sub, Raw: raw, ReceivedAt: time.Unix(1_800_000_000, 0)}
}

func TestStore(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		sv, _ := signedSurvey(t, "commute")
		if err := s.OpenSurvey(ctx, sv); err != nil {
			t.Fatal(err)
		}
		if err := s.OpenSurvey(ctx, sv); err != nil {
			t.Fatalf("reopening the same survey: %v", err)
		}
		other, _ := signedSurvey(t, "commute")
		other.Definition.Title = "other"
		other2, _ := survey.Sign(other.Definition, mustKey(t))
		if err := s.OpenSurvey(ctx, other2); !errors.Is(err, ErrExists) {
			t.Fatalf("another survey under a taken name: %v", err)
		}
		items := []Item{item(t, sv, 1, 0, 10, 1, 5), item(t, sv, 2, 2, 30, 0, 100), item(t, sv, 3, 2, 180, 1, -10)}
		res, err := s.InsertBatch(ctx, append(items, items[0]))
		if err != nil {
			t.Fatal(err)
		}
		if res[0] != Inserted || res[1] != Inserted || res[2] != Inserted || res[3] != Duplicate {
			t.Fatalf("results %v", res)
		}
		if r, err := s.Insert(ctx, items[1]); err != nil || r != Duplicate {
			t.Fatalf("retransmission: %v %v", r, err)
		}
		bad := items[0]
		bad.Survey = "nope"
		if r, err := s.Insert(ctx, bad); err != nil || r != Unknown {
			t.Fatalf("unknown survey: %v %v", r, err)
		}
		check := func(kind, q string, want ...int64) {
			t.Helper()
			got, _, err := s.Exact(ctx, "commute", kind, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s %s: %v", kind, q, got)
			}
			for i := range want {
				if got[i].Int64() != want[i] {
					t.Errorf("%s %s: %v, want %v", kind, q, got, want)
				}
			}
		}
		check(KindCount, "", 3)
		if has, err := s.Has(ctx, "commute", items[1].Submission.ID); err != nil || !has {
			t.Errorf("Has stored: %v %v", has, err)
		}
		if has, err := s.Has(ctx, "commute", survey.SubmissionID{0xff}); err != nil || has {
			t.Errorf("Has not stored: %v %v", has, err)
		}
		check(KindHistogram, "mode", 1, 0, 2)
		check(KindHistogram, "remote", 1, 2)
		check(KindSum, "minutes", 220)
		check(KindMean, "km", 95, 3)

		var rows []*Row
		if err := s.Rows(ctx, "commute", func(r *Row) error { rows = append(rows, r); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 || rows[2].Values[1] != 180 || rows[2].Values[3] != -10 || rows[0].ID != items[0].Submission.ID {
			t.Fatalf("rows %+v", rows)
		}

		// Another store on the same database sees everything (durable, not cached).
		s2 := open()
		info, err := s2.Survey(ctx, "commute")
		if err != nil || info.Submissions != 3 || info.Closed || info.Budget != 2*dp.EpsilonUnit {
			t.Fatalf("info %+v %v", info, err)
		}

		if err := s.CloseSurvey(ctx, "commute"); err != nil {
			t.Fatal(err)
		}
		if r, err := s.Insert(ctx, item(t, sv, 9, 0, 1, 0, 0)); err != nil || r != Closed {
			t.Fatalf("closed survey: %v %v", r, err)
		}
		if r, err := s.Insert(ctx, items[2]); err != nil || r != Duplicate {
			t.Fatalf("retransmission after closing: %v %v", r, err)
		}
		if err := s.CloseSurvey(ctx, "nope"); !errors.Is(err, ErrUnknownSurvey) {
			t.Errorf("close unknown: %v", err)
		}
		check(KindCount, "", 3)
		if names, err := s.Surveys(ctx); err != nil || len(names) != 1 || names[0] != "commute" {
			t.Errorf("surveys %v %v", names, err)
		}
	})
}

func mustKey(t testing.TB) *keys.IdentityPrivateKey {
	k, err := keys.NewIdentityPrivateKey(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRelease(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		sv, _ := signedSurvey(t, "r")
		if err := s.OpenSurvey(ctx, sv); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if _, err := s.Insert(ctx, item(t, sv, byte(i), int64(i%3), int64(i), int64(i%2), 50)); err != nil {
				t.Fatal(err)
			}
		}
		smp := dp.NewSampler(nil)
		r, err := s.Release(ctx, "r", Request{Kind: KindHistogram, Question: "mode", Epsilon: dp.EpsilonUnit / 2}, smp)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Values) != 3 || r.Labels[1] != "bike" || r.Spent != dp.EpsilonUnit/2 || r.Remaining != 3*dp.EpsilonUnit/2 || r.Seq != 1 {
			t.Fatalf("release %+v", r)
		}
		if r, err = s.Release(ctx, "r", Request{Kind: KindMean, Question: "km", Epsilon: dp.EpsilonUnit / 2}, smp); err != nil || len(r.Values) != 2 || r.Decimals != 1 {
			t.Fatalf("mean %+v %v", r, err)
		}
		for _, bad := range []Request{
			{Kind: KindSum, Question: "mode", Epsilon: 1},
			{Kind: KindHistogram, Question: "minutes", Epsilon: 1},
			{Kind: KindSum, Question: "nope", Epsilon: 1},
			{Kind: "median", Question: "minutes", Epsilon: 1},
			{Kind: KindCount, Question: "minutes", Epsilon: 1},
		} {
			if _, err := s.Release(ctx, "r", bad, smp); !errors.Is(err, ErrRelease) {
				t.Errorf("%+v: %v", bad, err)
			}
		}
		// Over budget: refused, nothing spent, nothing recorded.
		if _, err := s.Release(ctx, "r", Request{Kind: KindCount, Epsilon: dp.EpsilonUnit + 1}, smp); !errors.Is(err, dp.ErrBudgetExceeded) {
			t.Fatalf("over budget: %v", err)
		}
		if _, err := s.Release(ctx, "r", Request{Kind: KindCount, Epsilon: 0}, smp); !errors.Is(err, dp.ErrEpsilon) {
			t.Fatalf("ε = 0: %v", err)
		}
		info, _ := s.Survey(ctx, "r")
		if info.Spent != dp.EpsilonUnit || info.Remaining() != dp.EpsilonUnit {
			t.Fatalf("spent %s", info.Spent)
		}
		if r, err = s.Release(ctx, "r", Request{Kind: KindCount, Epsilon: dp.EpsilonUnit}, smp); err != nil || r.Remaining != 0 {
			t.Fatalf("exactly the rest: %+v %v", r, err)
		}
		if _, err := s.Release(ctx, "r", Request{Kind: KindCount, Epsilon: 1}, smp); !errors.Is(err, dp.ErrBudgetExceeded) {
			t.Fatalf("budget spent: %v", err)
		}
		rs, err := s.Releases(ctx, "r")
		if err != nil || len(rs) != 3 || rs[2].Kind != KindCount || rs[0].Labels[2] != "train" {
			t.Fatalf("releases %v %v", rs, err)
		}
		if _, err := s.Release(ctx, "nope", Request{Kind: KindCount, Epsilon: 1}, smp); !errors.Is(err, ErrUnknownSurvey) {
			t.Errorf("unknown survey: %v", err)
		}
	})
}

// Concurrent releases never overspend the budget, across connections.
func TestReleaseConcurrent(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		sv, _ := signedSurvey(t, "c")
		if err := s.OpenSurvey(ctx, sv); err != nil {
			t.Fatal(err)
		}
		smp := dp.NewSampler(nil)
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Release(ctx, "c", Request{Kind: KindCount, Epsilon: dp.EpsilonUnit / 4}, smp); err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		info, _ := s.Survey(ctx, "c")
		rs, _ := s.Releases(ctx, "c")
		if ok > 8 || info.Spent != dp.Epsilon(ok)*dp.EpsilonUnit/4 || len(rs) != ok {
			t.Fatalf("%d releases succeeded, spent %s, %d recorded", ok, info.Spent, len(rs))
		}
	})
}

func TestOpenRefusals(t *testing.T) {
	ctx := context.Background()
	for _, tc := range [][2]string{{"mysql", "x"}, {SQLite, ""}, {SQLite, "a.db?mode=ro"}, {Postgres, ""}} {
		if _, err := Open(ctx, tc[0], tc[1]); err == nil {
			t.Errorf("%v opened", tc)
		}
	}
}

// A database migrated by a newer program is refused rather than misread.
func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(ctx, SQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(ctx, SQLite, path); err == nil {
		t.Error("newer schema accepted")
	}
}

// Released histograms carry exactly the documented noise: each bin is its exact count plus
// Lap_Z(1/ε) (docs/spec/survey.md section 6.2). 100 releases of 64 bins at ε = 1 spend a
// budget of 100 and give 6,400 draws for a chi-square test.
func TestReleaseNoiseDistribution(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, SQLite, filepath.Join(t.TempDir(), "n.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := mustKey(t)
	opts := make([]string, survey.MaxOptions)
	for i := range opts {
		opts[i] = fmt.Sprintf("o%d", i)
	}
	sv, err := survey.Sign(&survey.Definition{Name: "n", Title: "t", Collector: k.Public(), Opens: 0, Closes: 4_000_000_000, Budget: dp.MaxEpsilon,
		Questions: []survey.Question{{ID: "q", Text: "?", Type: survey.Categorical, Options: opts}}}, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.OpenSurvey(ctx, sv); err != nil {
		t.Fatal(err)
	}
	var items []Item
	for i := range 200 {
		sub := &survey.Submission{Survey: sv.ID(), ID: survey.SubmissionID{byte(i), byte(i >> 8)}, Answers: []survey.Answer{{Type: survey.Categorical, Value: int64(i*i) % 64}}}
		raw, _ := sub.Marshal()
		items = append(items, Item{Survey: "n", Submission: sub, Raw: raw, ReceivedAt: time.Now()})
	}
	if _, err := s.InsertBatch(ctx, items); err != nil {
		t.Fatal(err)
	}
	exact, _, err := s.Exact(ctx, "n", KindHistogram, "q")
	if err != nil {
		t.Fatal(err)
	}
	smp := dp.NewSampler(nil)
	noise := map[int64]int{}
	n := 0
	for range int(dp.MaxEpsilon / dp.EpsilonUnit) {
		r, err := s.Release(ctx, "n", Request{Kind: KindHistogram, Question: "q", Epsilon: dp.EpsilonUnit}, smp)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range r.Values {
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			noise[x-exact[i].Int64()]++
			n++
		}
	}
	dptest.ChiSquareSymmetric(t, "released histogram noise", noise, n, dptest.LaplacePMF(1))
	if _, err := s.Release(ctx, "n", Request{Kind: KindCount, Epsilon: 1}, smp); !errors.Is(err, dp.ErrBudgetExceeded) {
		t.Errorf("after the whole budget: %v", err)
	}
}

// Several processes opening one new database at once (providers sharing a PostgreSQL) all
// succeed, and the schema is migrated once.
func TestConcurrentMigrations(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		var wg sync.WaitGroup
		stores := make(chan *Store, 6)
		for range 6 {
			wg.Add(1)
			go func() { defer wg.Done(); stores <- open() }()
		}
		wg.Wait()
		close(stores)
		s := <-stores
		var n int
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != SchemaVersion() {
			t.Errorf("%d migrations recorded: %v", n, err)
		}
	})
}

// A batch larger than one multi-row statement, with duplicates inside it and of earlier rows,
// stores each submission once and reports each item right.
func TestLargeBatch(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		sv, _ := signedSurvey(t, "big")
		if err := s.OpenSurvey(ctx, sv); err != nil {
			t.Fatal(err)
		}
		var items []Item
		for i := range 3*insertChunk + 7 {
			it := item(t, sv, byte(i), int64(i%3), int64(i%181), 0, 0)
			it.Submission.ID[2] = byte(i >> 8)
			it.Raw, _ = it.Submission.Marshal()
			items = append(items, it)
		}
		if _, err := s.Insert(ctx, items[5]); err != nil {
			t.Fatal(err)
		}
		batch := append(append([]Item(nil), items...), items[700], items[0])
		res, err := s.InsertBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			want := Inserted
			if i == 5 || i >= len(items) {
				want = Duplicate
			}
			if r != want {
				t.Fatalf("item %d: %v, want %v", i, r, want)
			}
		}
		n, _, err := s.Exact(ctx, "big", KindCount, "")
		if err != nil || n[0].Int64() != int64(len(items)) {
			t.Fatalf("%v rows, want %d: %v", n, len(items), err)
		}
		sum, _, _ := s.Exact(ctx, "big", KindSum, "minutes")
		var want int64
		for i := range items {
			want += int64(i % 181)
		}
		if sum[0].Int64() != want {
			t.Errorf("sum %s, want %d", sum[0], want)
		}
	})
}
