package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/dp"
	"github.com/panoramix-mixnet/panoramix/pkg/survey"
)

// Release kinds (docs/spec/survey.md section 6.2).
const (
	KindCount     = "count"
	KindHistogram = "histogram"
	KindSum       = "sum"
	KindMean      = "mean"
)

// ErrRelease is wrapped by refusals of a release request (wrong kind for the question, unknown
// question); over-budget releases wrap dp.ErrBudgetExceeded.
var ErrRelease = errors.New("store: invalid release")

// Request asks for one statistic.
type Request struct {
	Kind string
	// Question is the question id; empty for KindCount.
	Question string
	Epsilon  dp.Epsilon
}

// Release is a released statistic and the budget after it.
type Release struct {
	Seq      int64
	At       time.Time
	Kind     string
	Question string
	Epsilon  dp.Epsilon
	// Labels name the Values: "count"; the options of a histogram; "sum"; "sum", "count".
	Labels []string
	// Values are the noisy integers, decimal (reals in units of 10^-Decimals).
	Values   []string
	Decimals uint8
	// Estimates are post-processed values: a histogram of a locally perturbed question
	// debiased for randomized response, or the mean; empty otherwise.
	Estimates []string
	// Spent and Remaining are the survey's budget after this release.
	Spent, Remaining dp.Epsilon
}

type storedResult struct {
	Labels    []string `json:"labels"`
	Values    []string `json:"values"`
	Decimals  uint8    `json:"decimals,omitempty"`
	Estimates []string `json:"estimates,omitempty"`
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// question finds a question by id.
func question(d *survey.Definition, id string) (int, *survey.Question, error) {
	for i := range d.Questions {
		if d.Questions[i].ID == id {
			return i, &d.Questions[i], nil
		}
	}
	return 0, nil, fmt.Errorf("%w: survey %q has no question %q", ErrRelease, d.Name, id)
}

// Exact computes the exact (noiseless) statistic over the stored rows: for KindCount the
// number of submissions; KindHistogram the count per option; KindSum the sum; KindMean the sum
// and the count. It is what Release adds noise to, and what tests compare with what was sent.
func (s *Store) Exact(ctx context.Context, name string, kind, qid string) ([]*big.Int, []string, error) {
	info, err := s.Survey(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	return s.exact(ctx, s.db, name, info.Signed.Definition, kind, qid)
}

func (s *Store) exact(ctx context.Context, db querier, name string, d *survey.Definition, kind, qid string) ([]*big.Int, []string, error) {
	count := func() (*big.Int, error) {
		var n int64
		if err := db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM submissions WHERE survey = ?`), name).Scan(&n); err != nil {
			return nil, fmt.Errorf("store: count: %w", err)
		}
		return big.NewInt(n), nil
	}
	if kind == KindCount {
		if qid != "" {
			return nil, nil, fmt.Errorf("%w: a count takes no question", ErrRelease)
		}
		n, err := count()
		return []*big.Int{n}, []string{"count"}, err
	}
	qi, q, err := question(d, qid)
	if err != nil {
		return nil, nil, err
	}
	switch kind {
	case KindHistogram:
		labels := q.Options
		switch q.Type {
		case survey.Boolean:
			labels = []string{"false", "true"}
		case survey.Categorical:
		default:
			return nil, nil, fmt.Errorf("%w: a histogram needs a boolean or categorical question; %q is %s", ErrRelease, qid, q.Type)
		}
		bins := make([]*big.Int, len(labels))
		for i := range bins {
			bins[i] = new(big.Int)
		}
		rows, err := db.QueryContext(ctx, s.q(`SELECT value, COUNT(*) FROM answers WHERE survey = ? AND question = ? GROUP BY value`), name, qi)
		if err != nil {
			return nil, nil, fmt.Errorf("store: histogram: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var v, n int64
			if err := rows.Scan(&v, &n); err != nil {
				return nil, nil, fmt.Errorf("store: histogram: %w", err)
			}
			if v < 0 || v >= int64(len(bins)) {
				return nil, nil, fmt.Errorf("store: stored answer %d to %q outside its options", v, qid)
			}
			bins[v].SetInt64(n)
		}
		return bins, labels, rows.Err()
	case KindSum, KindMean:
		if q.Type != survey.Integer && q.Type != survey.Real {
			return nil, nil, fmt.Errorf("%w: a %s needs an integer or real question; %q is %s", ErrRelease, kind, qid, q.Type)
		}
		// Summed here with big integers: the database's SUM may overflow 64 bits.
		rows, err := db.QueryContext(ctx, s.q(`SELECT value FROM answers WHERE survey = ? AND question = ?`), name, qi)
		if err != nil {
			return nil, nil, fmt.Errorf("store: sum: %w", err)
		}
		defer rows.Close()
		sum, n := new(big.Int), int64(0)
		for rows.Next() {
			var v int64
			if err := rows.Scan(&v); err != nil {
				return nil, nil, fmt.Errorf("store: sum: %w", err)
			}
			sum.Add(sum, big.NewInt(v))
			n++
		}
		if err := rows.Err(); err != nil {
			return nil, nil, err
		}
		if kind == KindSum {
			return []*big.Int{sum}, []string{"sum"}, nil
		}
		return []*big.Int{sum, big.NewInt(n)}, []string{"sum", "count"}, nil
	}
	return nil, nil, fmt.Errorf("%w: kind %q: want count, histogram, sum or mean", ErrRelease, kind)
}

// Release computes the statistic, adds the noise of section 6.2 with sampler, charges req.Epsilon
// to the survey's budget and records the release, all in one transaction: a release refused
// (over budget, wrong question) changes nothing.
func (s *Store) Release(ctx context.Context, name string, req Request, sampler *dp.Sampler) (*Release, error) {
	var out *Release
	err := s.tx(ctx, func(tx *sql.Tx) error {
		lock := ""
		if s.driver == Postgres {
			lock = " FOR UPDATE"
		}
		var raw []byte
		var budget, spent int64
		err := tx.QueryRowContext(ctx, s.q(`SELECT signed, budget, spent FROM surveys WHERE name = ?`+lock), name).Scan(&raw, &budget, &spent)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %q", ErrUnknownSurvey, name)
		}
		if err != nil {
			return err
		}
		sv, err := survey.ParseSigned(raw)
		if err != nil {
			return fmt.Errorf("stored survey %q: %w", name, err)
		}
		ledger, err := dp.NewLedger(dp.Epsilon(budget), dp.Epsilon(spent))
		if err != nil {
			return err
		}
		if err := ledger.Charge(req.Epsilon); err != nil {
			return fmt.Errorf("survey %q: %w", name, err)
		}
		exact, labels, err := s.exact(ctx, tx, name, sv.Definition, req.Kind, req.Question)
		if err != nil {
			return err
		}
		r := &Release{Kind: req.Kind, Question: req.Question, Epsilon: req.Epsilon, Labels: labels, At: s.now().Truncate(time.Second), Spent: ledger.Spent(), Remaining: ledger.Remaining()}
		noisy, err := s.noise(sv.Definition, req, exact, sampler, r)
		if err != nil {
			return err
		}
		for _, v := range noisy {
			r.Values = append(r.Values, v.String())
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE surveys SET spent = ? WHERE name = ? AND spent = ?`), int64(ledger.Spent()), name, spent)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errors.New("the budget changed during the release; try again")
		}
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COALESCE(MAX(seq), 0) + 1 FROM releases WHERE survey = ?`), name).Scan(&r.Seq); err != nil {
			return err
		}
		js, err := json.Marshal(storedResult{Labels: r.Labels, Values: r.Values, Decimals: r.Decimals, Estimates: r.Estimates})
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO releases (survey, seq, released_at, kind, question, epsilon, result) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			name, r.Seq, r.At.Unix(), r.Kind, r.Question, int64(r.Epsilon), string(js)); err != nil {
			return err
		}
		out = r
		return nil
	})
	if err != nil {
		if errors.Is(err, dp.ErrBudgetExceeded) || errors.Is(err, ErrRelease) || errors.Is(err, ErrUnknownSurvey) || errors.Is(err, dp.ErrEpsilon) {
			return nil, err
		}
		return nil, fmt.Errorf("store: release: %w", err)
	}
	return out, nil
}

// noise applies the mechanism of req.Kind to the exact values, and fills r's post-processed
// estimates.
func (s *Store) noise(d *survey.Definition, req Request, exact []*big.Int, sampler *dp.Sampler, r *Release) ([]*big.Int, error) {
	switch req.Kind {
	case KindCount:
		v, err := sampler.Count(exact[0].Int64(), req.Epsilon)
		return []*big.Int{v}, err
	case KindHistogram:
		counts := make([]int64, len(exact))
		for i, v := range exact {
			counts[i] = v.Int64()
		}
		h, err := sampler.Histogram(counts, req.Epsilon)
		if err != nil {
			return nil, err
		}
		if _, q, _ := question(d, req.Question); q.LocalEpsilon != 0 {
			f := make([]float64, len(h))
			for i, v := range h {
				f[i], _ = new(big.Float).SetInt(v).Float64()
			}
			for _, e := range dp.EstimateRR(f, q.LocalEpsilon) {
				r.Estimates = append(r.Estimates, fmt.Sprintf("%.1f", e))
			}
		}
		return h, nil
	}
	qi, q, _ := question(d, req.Question)
	lo, hi, err := d.Bounds(qi)
	if err != nil {
		return nil, err
	}
	r.Decimals = q.Decimals
	if req.Kind == KindSum {
		v, err := sampler.Sum(exact[0], lo, hi, req.Epsilon)
		return []*big.Int{v}, err
	}
	m, err := sampler.Mean(exact[0], exact[1].Int64(), lo, hi, req.Epsilon)
	if err != nil {
		return nil, err
	}
	if est, ok := m.Estimate(lo, hi); ok {
		// The estimate is in units of 10^-decimals: scale it back.
		est.Quo(est, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(q.Decimals)), nil)))
		r.Estimates = []string{est.FloatString(int(q.Decimals) + 2)}
	}
	return []*big.Int{m.Sum, m.Count}, nil
}

// Releases lists a survey's releases, oldest first. Their Spent and Remaining are zero.
func (s *Store) Releases(ctx context.Context, name string) ([]*Release, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT seq, released_at, kind, question, epsilon, result FROM releases WHERE survey = ? ORDER BY seq`), name)
	if err != nil {
		return nil, fmt.Errorf("store: list releases: %w", err)
	}
	defer rows.Close()
	var out []*Release
	for rows.Next() {
		r := &Release{}
		var at, eps int64
		var js string
		if err := rows.Scan(&r.Seq, &at, &r.Kind, &r.Question, &eps, &js); err != nil {
			return nil, fmt.Errorf("store: list releases: %w", err)
		}
		var sr storedResult
		if err := json.Unmarshal([]byte(js), &sr); err != nil {
			return nil, fmt.Errorf("store: release %d: %w", r.Seq, err)
		}
		r.At, r.Epsilon = time.Unix(at, 0), dp.Epsilon(eps)
		r.Labels, r.Values, r.Decimals, r.Estimates = sr.Labels, sr.Values, sr.Decimals, sr.Estimates
		out = append(out, r)
	}
	return out, rows.Err()
}
