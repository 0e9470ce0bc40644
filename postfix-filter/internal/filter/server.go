package filter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/postfix-filter/internal/dedup"
	"github.com/panoramix-mixnet/panoramix/postfix-filter/internal/message"
)

// Config configures a Server.
type Config struct {
	// Listener is where Postfix connects (the content_filter next hop).
	Listener net.Listener
	// ReinjectAddress is Postfix's re-injection smtpd (host:port).
	ReinjectAddress string
	// Hostname is used in the greeting and in EHLO to the re-injection smtpd.
	Hostname string
	// MaxMessageSize, MaxRecipients and MaxConnections bound what one peer can make the filter
	// hold; Timeout bounds every read and write, in and out.
	MaxMessageSize int
	MaxRecipients  int
	MaxConnections int
	Timeout        time.Duration
	// ConsensusTimeout bounds the wait for the consensus while a message waits.
	ConsensusTimeout time.Duration
	Mixnet           Mixnet
	Dedup            *dedup.Store
	Logger           *slog.Logger
	// Metrics registers the filter's counters; nil keeps them unregistered.
	Metrics prometheus.Registerer
}

// Server is the content filter.
type Server struct {
	cfg  Config
	log  *slog.Logger
	smtp *smtp.Server
	m    *metrics
}

// New checks cfg and returns a Server; Run serves.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Listener == nil:
		return nil, errors.New("filter: no listener")
	case cfg.ReinjectAddress == "":
		return nil, errors.New("filter: no re-injection address")
	case cfg.Mixnet == nil || cfg.Dedup == nil:
		return nil, errors.New("filter: no mixnet or no dedup store")
	case cfg.MaxMessageSize < 1 || cfg.MaxRecipients < 1 || cfg.MaxConnections < 1 || cfg.Timeout <= 0 || cfg.ConsensusTimeout <= 0:
		return nil, errors.New("filter: limits and timeouts must be positive")
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, m: newMetrics(cfg.Metrics)}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	srv.Domain = cfg.Hostname
	srv.MaxMessageBytes = int64(cfg.MaxMessageSize)
	srv.MaxRecipients = cfg.MaxRecipients
	srv.ReadTimeout, srv.WriteTimeout = cfg.Timeout, cfg.Timeout
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = slogPrinter{cfg.Logger}
	s.smtp = srv
	return s, nil
}

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) { p.l.Warn(fmt.Sprintf(format, v...)) }
func (p slogPrinter) Println(v ...any)               { p.l.Warn(fmt.Sprint(v...)) }

// Run serves until ctx ends, then closes the listener and waits up to Timeout for the
// transactions in progress (Postfix retries any that do not finish).
func (s *Server) Run(ctx context.Context) error {
	ln := &limitListener{Listener: s.cfg.Listener, sem: make(chan struct{}, s.cfg.MaxConnections), log: s.log, refused: s.m.refused}
	errc := make(chan error, 1)
	go func() { errc <- s.smtp.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("filter: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	if err := s.smtp.Shutdown(sctx); err != nil {
		s.smtp.Close()
	}
	<-errc
	return nil
}

// limitListener turns away connections beyond the limit with 421, so that a flood costs one
// goroutine and one short write per connection and Postfix retries later.
type limitListener struct {
	net.Listener
	sem     chan struct{}
	log     *slog.Logger
	refused prometheus.Counter

	warnMu   sync.Mutex
	lastWarn time.Time
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
		}
		l.refused.Inc()
		l.warnMu.Lock()
		if time.Since(l.lastWarn) > 10*time.Second {
			l.lastWarn = time.Now()
			l.log.Warn("too many connections; turning new ones away with 421", "limit", cap(l.sem))
		}
		l.warnMu.Unlock()
		go func() {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "421 4.3.2 Too many connections to the PANORAMIX filter, try again later\r\n")
			c.Close()
		}()
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// session is one SMTP connection's state.
type session struct {
	s     *Server
	from  string
	opts  smtp.MailOptions
	rcpts []string
}

func (ss *session) Reset()        { ss.from, ss.opts, ss.rcpts = "", smtp.MailOptions{}, nil }
func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	ss.Reset()
	ss.from = from
	if opts != nil {
		ss.opts = smtp.MailOptions{Body: opts.Body, UTF8: opts.UTF8, Size: opts.Size}
	}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if _, _, err := splitAddress(to); err != nil {
		return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: fmt.Sprintf("Bad recipient address: %v", err)}
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

// splitAddress returns the local part and the lowercase domain of addr.
func splitAddress(addr string) (local, domain string, err error) {
	i := strings.LastIndexByte(addr, '@')
	if i < 1 || i == len(addr)-1 {
		return "", "", errors.New("want local-part@domain")
	}
	local, domain = addr[:i], strings.ToLower(addr[i+1:])
	if strings.ContainsAny(addr, "\x00\r\n") {
		return "", "", errors.New("control characters in the address")
	}
	return local, domain, nil
}

func smtpErr(code int, enh smtp.EnhancedCode, format string, args ...any) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: fmt.Sprintf(format, args...)}
}

// Data reads the message and passes every recipient's copy on; it answers 250 (nil) only once
// all of them are durable.
func (ss *session) Data(r io.Reader) error {
	err := ss.data(r)
	ss.s.m.reply(err)
	return err
}

func (ss *session) data(r io.Reader) error {
	s := ss.s
	data, err := io.ReadAll(r)
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se // 552 for a message over max_message_size
		}
		return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Reading the message failed: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()

	// stripped is the message without its X-PANORAMIX-Mixable fields: what enters the mixnet,
	// and also what goes back to Postfix, so that an outside recipient never learns that the
	// sender's client marked the mail. Only a header section the filter cannot read goes back
	// as it came (it cannot tell where that section's fields begin and end).
	marker := message.Absent
	stripped := data
	reason := "no X-PANORAMIX-Mixable field"
	var subject, msgID string
	if m, err := message.Parse(data); err != nil {
		s.m.malformed.Inc()
		reason = "header section not readable"
		s.log.Debug("header section not readable; message goes back to Postfix unchanged", "err", err)
	} else {
		marker = m.Marker()
		if marker != message.Absent {
			stripped = m.Strip()
		}
		switch marker {
		case message.Mixable:
			subject, msgID = m.Value("Subject"), m.Value("Message-ID")
			reason = "domain not in the mixnet"
		case message.Invalid:
			reason = "X-PANORAMIX-Mixable is not \"yes\""
		}
	}

	type copyOf struct {
		rcpt          string
		local, domain string
		key           dedup.Key
	}
	var toMix, toReinject []copyOf
	for _, rcpt := range ss.rcpts {
		local, domain, _ := splitAddress(rcpt) // checked in Rcpt
		c := copyOf{rcpt: rcpt, local: local, domain: domain, key: dedup.NewKey(ss.from, rcpt, data)}
		rec, done, err := s.cfg.Dedup.Lookup(c.key)
		if err != nil {
			s.log.Error("dedup store", "err", err)
			return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Local error in the PANORAMIX filter, try again later")
		}
		if done {
			s.m.copies.WithLabelValues("duplicate").Inc()
			s.log.Info("copy already passed on; not sending it again", "route", rec.Route, "id", rec.MessageID)
			continue
		}
		mix := false
		if marker == message.Mixable {
			cctx, ccancel := context.WithTimeout(ctx, s.cfg.ConsensusTimeout)
			mix, err = s.cfg.Mixnet.Serves(cctx, domain)
			ccancel()
			if errors.Is(err, ErrDomainAway) {
				s.log.Info("mixnet provider away; Postfix will retry", "domain", domain)
				return smtpErr(451, smtp.EnhancedCode{4, 4, 4}, "The mixnet provider of %s is temporarily away, try again later", domain)
			}
			if err != nil {
				s.log.Warn("no consensus; Postfix will retry", "err", err)
				return smtpErr(451, smtp.EnhancedCode{4, 4, 3}, "Mixnet directory unavailable, try again later")
			}
		}
		if mix {
			toMix = append(toMix, c)
		} else {
			toReinject = append(toReinject, c)
		}
	}

	if len(toMix) > 0 {
		if err := s.cfg.Mixnet.Ready(); err != nil {
			s.log.Warn("mixnet not ready; Postfix will retry", "err", err)
			return smtpErr(451, smtp.EnhancedCode{4, 4, 1}, "Mixnet provider unreachable, try again later")
		}
		if max := s.cfg.Mixnet.MaxMessageSize(ctx); max > 0 && len(stripped) > max {
			return smtpErr(552, smtp.EnhancedCode{5, 3, 4}, "Message too large for the mixnet: %d bytes, at most %d", len(stripped), max)
		}
	}
	for _, c := range toMix {
		id, err := s.cfg.Mixnet.Send(ctx, c.domain, c.local, stripped)
		switch {
		case errors.Is(err, client.ErrTooLarge):
			return smtpErr(552, smtp.EnhancedCode{5, 3, 4}, "Message too large for the mixnet")
		case err != nil:
			s.log.Warn("queueing for the mixnet failed; Postfix will retry", "err", err)
			return smtpErr(451, smtp.EnhancedCode{4, 4, 3}, "Mixnet temporarily unavailable, try again later")
		}
		now := time.Now()
		out := dedup.Outgoing{From: ss.from, Rcpt: c.rcpt, Subject: clip(subject, maxKept), MessageID: clip(msgID, maxKept), Time: now}
		if err := s.cfg.Dedup.PutMixnet(c.key, dedup.Record{Route: dedup.Mixnet, MessageID: id, Time: now}, out); err != nil {
			s.log.Error("dedup store", "err", err)
			return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Local error in the PANORAMIX filter, try again later")
		}
		s.m.copies.WithLabelValues("mixnet").Inc()
		s.log.Info("queued for the mixnet", "id", id, "domain", c.domain, "size", len(stripped))
	}
	if len(toReinject) > 0 {
		rcpts := make([]string, len(toReinject))
		for i, c := range toReinject {
			rcpts[i] = c.rcpt
		}
		if err := s.reinject(ss.from, &ss.opts, rcpts, stripped); err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				s.log.Warn("re-injection refused", "code", se.Code, "msg", se.Message)
				return smtpErr(se.Code, se.EnhancedCode, "Re-injection into Postfix: %s", se.Message)
			}
			s.log.Warn("re-injection failed; Postfix will retry", "err", err)
			return smtpErr(451, smtp.EnhancedCode{4, 4, 2}, "Re-injection into Postfix failed, try again later")
		}
		now := time.Now()
		for _, c := range toReinject {
			if err := s.cfg.Dedup.Put(c.key, dedup.Record{Route: dedup.Reinjected, Time: now}); err != nil {
				// The copy is with Postfix already: answering 4xx would duplicate it.
				s.log.Error("dedup store after re-injection", "err", err)
			}
		}
		s.m.copies.WithLabelValues("reinjected").Add(float64(len(rcpts)))
		s.log.Info("re-injected into Postfix", "recipients", len(rcpts), "size", len(stripped), "reason", reason)
	}
	return nil
}

// reinject hands the message to the re-injection smtpd. Every recipient must be
// accepted, or nothing is sent.
func (s *Server) reinject(from string, opts *smtp.MailOptions, rcpts []string, data []byte) error {
	conn, err := net.DialTimeout("tcp", s.cfg.ReinjectAddress, s.cfg.Timeout)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(s.cfg.Timeout))
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello(s.cfg.Hostname); err != nil {
		return err
	}
	o := *opts
	if ok, _ := c.Extension("SMTPUTF8"); !ok {
		o.UTF8 = false
	}
	if err := c.Mail(from, &o); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	// The message is accepted once DATA is answered; a failed QUIT changes nothing.
	c.Quit()
	return nil
}
