package node

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's Prometheus metrics (served on /metrics).
type metrics struct {
	received      *prometheus.CounterVec
	forwarded     prometheus.Counter
	delivered     *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	unwrapErrors  *prometheus.CounterVec
	serviceErrors *prometheus.CounterVec
	replayHits    prometheus.Counter
	loopsSent     prometheus.Counter
	loopsReceived prometheus.Counter
	mailServed    prometheus.Counter // provider only
}

func newMetrics(reg *prometheus.Registry, queueDepth func() int) metrics {
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := metrics{
		received:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mixd_packets_received_total", Help: "Packets received on links, by sender kind (node or client)."}, []string{"from"}),
		forwarded:     prometheus.NewCounter(prometheus.CounterOpts{Name: "mixd_packets_forwarded_total", Help: "Packets handed to the next hop's link."}),
		delivered:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mixd_packets_delivered_total", Help: "Final-hop payloads delivered, by service."}, []string{"service"}),
		dropped:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mixd_packets_dropped_total", Help: "Packets dropped, by reason."}, []string{"reason"}),
		unwrapErrors:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mixd_unwrap_errors_total", Help: "Packets that failed to unwrap, by reason."}, []string{"reason"}),
		serviceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mixd_service_errors_total", Help: "Payloads a service could not handle, by service."}, []string{"service"}),
		replayHits:    prometheus.NewCounter(prometheus.CounterOpts{Name: "mixd_replay_hits_total", Help: "Packets dropped as replays."}),
		loopsSent:     prometheus.NewCounter(prometheus.CounterOpts{Name: "mixd_loops_sent_total", Help: "Mix loop cover packets sent."}),
		loopsReceived: prometheus.NewCounter(prometheus.CounterOpts{Name: "mixd_loops_received_total", Help: "Mix loop cover packets that came back."}),
	}
	for _, c := range []prometheus.Collector{m.received, m.forwarded, m.delivered, m.dropped, m.unwrapErrors, m.serviceErrors, m.replayHits, m.loopsSent, m.loopsReceived} {
		f(c)
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mixd_queue_depth", Help: "Packets held for their delay."}, func() float64 { return float64(queueDepth()) }))
	return m
}

// registerProvider adds the metrics of reading mail through the link (docs/spec/services.md
// section 6).
func (m *metrics) registerProvider(reg *prometheus.Registry, usersViaLink func() int) {
	m.mailServed = prometheus.NewCounter(prometheus.CounterOpts{Name: "mixd_mail_items_served_total", Help: "Chunks of sealed mail sent to clients in answer to retrieve-mail."})
	reg.MustRegister(m.mailServed)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mixd_users_reading_via_link", Help: "Users whose client reads their mail through its link (their mail is held for it, not delivered to IMAP or LMTP)."}, func() float64 { return float64(usersViaLink()) }))
}
