package mailbox

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Failure reasons, the label of mixd_mailbox_failures_total.
const (
	reasonMalformed        = "malformed"
	reasonUnknownRecipient = "unknown_recipient"
	reasonOverQuota        = "over_quota"
	reasonTooLarge         = "too_large"
	reasonRejected         = "rejected"
)

type metrics struct {
	stored     prometheus.Counter
	duplicates prometheus.Counter
	delivered  prometheus.Counter
	retries    prometheus.Counter
	expired    prometheus.Counter
	evicted    prometheus.Counter
	failures   *prometheus.CounterVec
	outbox     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mixd_mailbox_fragments_stored_total",
			Help: "Fragments stored durably and acknowledged for the first time.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mixd_mailbox_duplicate_fragments_total",
			Help: "Retransmitted fragments recognised and acknowledged again without storing them.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mixd_mailbox_messages_delivered_total",
			Help: "Complete messages handed to the delivery backend.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mixd_mailbox_delivery_retries_total",
			Help: "Deliveries that failed temporarily and will be retried.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mixd_mailbox_messages_expired_total",
			Help: "Incomplete messages dropped after the expiry time.",
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mixd_mailbox_messages_evicted_total",
			Help: "Incomplete messages dropped to make room for other fragments (docs/spec/services.md section 4).",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mixd_mailbox_failures_total",
			Help: "Fragments or messages refused for good, by reason.",
		}, []string{"reason"}),
		outbox: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mixd_mailbox_outbox_messages",
			Help: "Complete messages waiting for delivery.",
		}),
	}
	for _, r := range []string{reasonMalformed, reasonUnknownRecipient, reasonOverQuota, reasonTooLarge, reasonRejected} {
		m.failures.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.stored, m.duplicates, m.delivered, m.retries, m.expired, m.evicted, m.failures, m.outbox} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("mailbox: register metrics: %w", err)
		}
	}
	return m, nil
}

// failureReason is the metric label of a permanent delivery failure.
func failureReason(err error) string {
	switch {
	case errors.Is(err, ErrUnknownUser):
		return reasonUnknownRecipient
	case errors.Is(err, ErrOverQuota):
		return reasonOverQuota
	case errors.Is(err, ErrTooLarge):
		return reasonTooLarge
	}
	return reasonRejected
}
