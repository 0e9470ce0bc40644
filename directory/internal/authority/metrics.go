package authority

import "github.com/prometheus/client_golang/prometheus"

// metrics are the authority's Prometheus metrics (served on /metrics).
type metrics struct {
	epoch      prometheus.Gauge
	uploads    *prometheus.CounterVec
	refused    prometheus.Counter
	failures   prometheus.Counter
	computed   prometheus.Counter
	peerErrors *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "directory_epoch", Help: "Current epoch number.",
		}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "directory_descriptor_uploads_total", Help: "Descriptor uploads by result (accepted or the HTTP status of the refusal).",
		}, []string{"result"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "directory_descriptors_beyond_approval_total", Help: "Descriptor uploads refused because they claim another role or mail domains than the node's approval.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "directory_epoch_failures_total", Help: "Epochs for which this authority could not make a document (parameter disagreement, too few votes).",
		}),
		computed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "directory_documents_computed_total", Help: "Consensus documents computed and signed.",
		}),
		peerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "directory_peer_fetch_errors_total", Help: "Failed fetches from peer authorities, by object.",
		}, []string{"object"}),
	}
	if r != nil {
		r.MustRegister(m.epoch, m.uploads, m.refused, m.failures, m.computed, m.peerErrors)
	}
	return m
}
