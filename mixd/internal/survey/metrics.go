package survey

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Refusal reasons, the label of mixd_survey_refusals_total (docs/spec/survey.md section 5).
const (
	reasonMalformed     = "malformed"
	reasonTooLarge      = "too_large"
	reasonUnknownSurvey = "unknown_survey"
	reasonClosed        = "closed"
	reasonNotOpen       = "not_open"
)

// Failure stages, the label of mixd_survey_failures_total.
const (
	stageCommit = "commit" // a group commit failed: its submissions were not acknowledged
	stageReply  = "reply"  // the ACK could not be sent through the submission's SURB
)

type metrics struct {
	stored     prometheus.Counter
	duplicates prometheus.Counter
	refusals   *prometheus.CounterVec
	commit     prometheus.Histogram
	batch      prometheus.Histogram
	failures   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mixd_survey_submissions_stored_total",
			Help: "Submissions stored durably and acknowledged for the first time.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mixd_survey_duplicate_submissions_total",
			Help: "Retransmitted submissions recognised and acknowledged again without storing them.",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mixd_survey_refusals_total",
			Help: "Submissions refused, by reason.",
		}, []string{"reason"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mixd_survey_commit_seconds",
			Help:    "Time of one group commit of submissions to the survey database.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms to 4 s
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mixd_survey_commit_submissions",
			Help:    "Submissions in one group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10), // 1 to 512 (maxBatch)
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mixd_survey_failures_total",
			Help: "Submissions left unanswered by a failure of the service: of their group commit (stage commit) or of their ACK (stage reply).",
		}, []string{"stage"}),
	}
	for _, r := range []string{reasonMalformed, reasonTooLarge, reasonUnknownSurvey, reasonClosed, reasonNotOpen} {
		m.refusals.WithLabelValues(r)
	}
	for _, st := range []string{stageCommit, stageReply} {
		m.failures.WithLabelValues(st)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.stored, m.duplicates, m.refusals, m.commit, m.batch, m.failures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("survey: register metrics: %w", err)
		}
	}
	return m, nil
}
