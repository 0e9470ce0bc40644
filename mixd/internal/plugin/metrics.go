package plugin

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Request results, the label of mixd_plugin_requests_total (docs/spec/plugin.md section 7).
const (
	resultAnswered  = "answered"
	resultBusy      = "busy"
	resultDown      = "down"
	resultTimeout   = "timeout"
	resultAbandoned = "abandoned"
)

// Violation kinds, the label of mixd_plugin_violations_total.
const (
	violationGarbage       = "garbage"
	violationOversize      = "oversize"
	violationHello         = "hello"
	violationHelloTimeout  = "hello_timeout"
	violationUnknownID     = "unknown_request"
	violationAnsweredTwice = "answered_twice"
	violationBadAnswer     = "bad_answer"
	violationHang          = "hang"
)

// vectors are the metric families, shared by every plugin of one registry.
type vectors struct {
	requests, restarts, violations, stderrDropped *prometheus.CounterVec
	inFlight                                      *prometheus.GaugeVec
	answer                                        *prometheus.HistogramVec
}

func newVectors(reg prometheus.Registerer) (*vectors, error) {
	v := &vectors{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mixd_plugin_requests_total",
			Help: "Requests for a plugin, by result (answered, busy, down, timeout, abandoned).",
		}, []string{"plugin", "result"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mixd_plugin_restarts_total",
			Help: "Times a plugin process ended (exit, crash or kill) and was started again.",
		}, []string{"plugin"}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mixd_plugin_violations_total",
			Help: "Protocol violations that got a plugin killed, by kind.",
		}, []string{"plugin", "kind"}),
		stderrDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mixd_plugin_stderr_dropped_total",
			Help: "Lines of a plugin's standard error not logged (over the rate limit).",
		}, []string{"plugin"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mixd_plugin_in_flight",
			Help: "Requests written to a plugin and not answered yet.",
		}, []string{"plugin"}),
		answer: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mixd_plugin_answer_seconds",
			Help:    "Time from a request written to a plugin to its answer read.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18), // 0.1 ms to 13 s
		}, []string{"plugin"}),
	}
	if reg == nil {
		return v, nil
	}
	for _, c := range []prometheus.Collector{v.requests, v.restarts, v.violations, v.stderrDropped, v.inFlight, v.answer} {
		if err := reg.Register(c); err != nil {
			// A second plugin on the same registry shares the families of the first.
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("plugin: register metrics: %w", err)
			}
			switch existing := are.ExistingCollector.(type) {
			case *prometheus.CounterVec:
				switch c {
				case v.requests:
					v.requests = existing
				case v.restarts:
					v.restarts = existing
				case v.violations:
					v.violations = existing
				case v.stderrDropped:
					v.stderrDropped = existing
				}
			case *prometheus.GaugeVec:
				v.inFlight = existing
			case *prometheus.HistogramVec:
				v.answer = existing
			}
		}
	}
	return v, nil
}
