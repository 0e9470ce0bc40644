package filter

import (
	"errors"
	"strconv"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the filter's counters on /metrics.
type metrics struct {
	copies    *prometheus.CounterVec // by route: mixnet, reinjected, duplicate
	replies   *prometheus.CounterVec // by SMTP code of the DATA reply
	refused   prometheus.Counter     // connections turned away over max_connections
	finished  *prometheus.CounterVec // engine messages by final state
	bounces   prometheus.Counter
	malformed prometheus.Counter // header sections that could not be read
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		copies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postfix_filter_copies_total",
			Help: "Recipient copies passed on, by route (mixnet, reinjected) or recognised as already passed on (duplicate)."}, []string{"route"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postfix_filter_replies_total",
			Help: "Replies to DATA by SMTP code."}, []string{"code"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "postfix_filter_connections_refused_total",
			Help: "Connections answered 421 because max_connections were open."}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postfix_filter_mixnet_finished_total",
			Help: "Messages the client engine finished, by state (delivered, sent, failed)."}, []string{"state"}),
		bounces: prometheus.NewCounter(prometheus.CounterOpts{Name: "postfix_filter_bounces_total",
			Help: "Bounces handed to Postfix for mail the mixnet failed to deliver."}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{Name: "postfix_filter_malformed_headers_total",
			Help: "Messages whose header section could not be read (re-injected unchanged)."}),
	}
	if reg != nil {
		reg.MustRegister(m.copies, m.replies, m.refused, m.finished, m.bounces, m.malformed)
	}
	return m
}

// reply counts the reply to DATA that err stands for.
func (m *metrics) reply(err error) {
	code := 250
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		code = se.Code
	} else if err != nil {
		code = 0 // not an SMTP reply: go-smtp answers it as a local error
	}
	m.replies.WithLabelValues(strconv.Itoa(code)).Inc()
}
