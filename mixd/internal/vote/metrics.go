package vote

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Refusal reasons, the label of mixd_vote_refusals_total (docs/spec/vote.md §11.8).
const (
	reasonMalformed       = "malformed"
	reasonTooLarge        = "too_large"
	reasonUnknownElection = "unknown_election"
	reasonWrongElection   = "wrong_election"
	reasonNotEligible     = "not_eligible"
	reasonBadSignature    = "bad_signature"
	reasonBadProof        = "bad_proof"
	reasonNotOpen         = "not_open"
	reasonClosed          = "closed"
)

var reasons = []string{reasonMalformed, reasonTooLarge, reasonUnknownElection, reasonWrongElection,
	reasonNotEligible, reasonBadSignature, reasonBadProof, reasonNotOpen, reasonClosed}

type metrics struct {
	appended    prometheus.Counter
	retransmits prometheus.Counter
	refusals    *prometheus.CounterVec
	closes      prometheus.Counter
	commit      prometheus.Histogram
	batch       prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mixd_vote_casts_appended_total",
			Help: "Casts appended to a board durably and answered with a receipt.",
		}),
		retransmits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mixd_vote_retransmitted_casts_total",
			Help: "Casts already on the board, answered again with their receipt without a new entry.",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mixd_vote_refusals_total",
			Help: "Casts refused, by reason; nothing is appended for them.",
		}, []string{"reason"}),
		closes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mixd_vote_closes_total",
			Help: "Elections closed (close entries appended).",
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mixd_vote_commit_seconds",
			Help:    "Time of one group commit (write and fsync) of board entries.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms to 4 s
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mixd_vote_commit_casts",
			Help:    "Casts handled in one group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10), // 1 to 512 (maxBatch)
		}),
	}
	for _, r := range reasons {
		m.refusals.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.appended, m.retransmits, m.refusals, m.closes, m.commit, m.batch} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("vote: register metrics: %w", err)
		}
	}
	return m, nil
}
