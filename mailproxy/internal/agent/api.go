package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// Version is the API version in every path (/agent/v1/...).
const Version = 1

const prefix = "/agent/v1/"

// Error codes of the JSON error body (docs/spec/agent.md section 4), for programs; the error
// text is for people.
const (
	codeBadRequest    = "bad_request"
	codeTooLarge      = "too_large"
	codeNotFound      = "not_found"
	codeUnknownDomain = "unknown_domain"
	codeNoService     = "no_service"
	codeDomainAway    = "domain_away"
	codeNoConsensus   = "no_consensus"
	codeNotFinished   = "not_finished"
	codeNotAgent      = "not_agent"
	codeBusy          = "busy"
	codeInternal      = "internal"
)

// Services that never answer: the engine sends to them without a reply path (SURB) and once
// (docs/spec/client.md section 4).
var silentServices = []string{"queue", "drop"}

func (a *Agent) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+"services", a.services)
	mux.HandleFunc("POST "+prefix+"send", a.send)
	mux.HandleFunc("GET "+prefix+"status", a.list)
	mux.HandleFunc("GET "+prefix+"status/{id}", a.status)
	mux.HandleFunc("DELETE "+prefix+"status/{id}", a.forget)
	mux.HandleFunc("GET "+prefix+"received", a.received)
	mux.HandleFunc("POST "+prefix+"received/{seq}/ack", a.ack)
	// Everything else, wrong methods included, gets a JSON 404 rather than the mux's text.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, codeNotFound, fmt.Sprintf("no endpoint %s %s (docs/spec/agent.md section 3)", r.Method, r.URL.Path))
	})
	return mux
}

// sendRequest is the body of POST /agent/v1/send (docs/spec/agent.md section 3.2).
type sendRequest struct {
	Account   string `json:"account,omitempty"`
	Domain    string `json:"domain"`
	Service   string `json:"service"`
	Recipient string `json:"recipient"`
	// Data is base64 (RFC 4648 section 4, with padding) in JSON.
	Data []byte `json:"data"`
	// Reply false sends without a reply path (fire and forget: no acknowledgement, no answer,
	// each fragment once, state sent). Absent or true: a reply path for every service but queue
	// and drop, which never answer (true is refused for them).
	Reply          *bool  `json:"reply,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// decodeSend parses and checks a send body: one JSON object, no unknown field, the required
// fields present, data within maxPayload.
func decodeSend(body []byte, maxPayload int) (*sendRequest, error) {
	var req sendRequest
	if err := decodeJSON(body, &req); err != nil {
		return nil, err
	}
	switch {
	case req.Domain == "":
		return nil, errors.New("missing domain")
	case req.Service == "":
		return nil, errors.New("missing service")
	case req.Recipient == "":
		return nil, errors.New("missing recipient")
	case len(req.Data) > maxPayload:
		return nil, fmt.Errorf("%w: data of %d bytes, at most %d", errTooLarge, len(req.Data), maxPayload)
	case len(req.IdempotencyKey) > MaxIdempotencyKey:
		return nil, fmt.Errorf("idempotency_key of %d bytes, at most %d", len(req.IdempotencyKey), MaxIdempotencyKey)
	case strings.ToLower(req.Domain) != req.Domain || len(req.Domain) > maxDomain:
		return nil, fmt.Errorf("domain %q: want a lowercase domain of at most %d bytes", req.Domain, maxDomain)
	}
	if err := (sphinx.Recipient{Service: req.Service, ID: req.Recipient}).Validate(); err != nil {
		return nil, fmt.Errorf("service or recipient: %w", err)
	}
	if req.Reply != nil && *req.Reply && slices.Contains(silentServices, req.Service) {
		return nil, fmt.Errorf("reply: true, but service %q never answers: the engine sends to it without a reply path", req.Service)
	}
	return &req, nil
}

var errTooLarge = errors.New("too large")

// maxDomain is the longest DNS name (RFC 1035 section 2.3.4).
const maxDomain = 253

// decodeJSON decodes exactly one JSON object into v, refusing unknown fields and trailing data.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON body: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("malformed JSON body: data after the object")
	}
	return nil
}

// statusJSON is a message's status as the API gives it (docs/spec/agent.md section 3.3).
type statusJSON struct {
	ID            string    `json:"id"`
	Domain        string    `json:"domain"`
	Service       string    `json:"service"`
	Recipient     string    `json:"recipient"`
	State         string    `json:"state"`
	Finished      bool      `json:"finished"`
	Reply         bool      `json:"reply"`
	Size          int       `json:"size"`
	Fragments     int       `json:"fragments"`
	Acknowledged  int       `json:"acknowledged"`
	Transmissions int       `json:"transmissions"`
	Reason        string    `json:"reason,omitempty"`
	Answer        []byte    `json:"answer,omitempty"`
	Created       time.Time `json:"created"`
	Updated       time.Time `json:"updated"`
}

func toJSON(st client.Status) statusJSON {
	return statusJSON{ID: st.ID.String(), Domain: st.Destination.Domain, Service: st.Destination.Service,
		Recipient: st.Destination.Recipient, State: string(st.State), Finished: st.State.Finished(), Reply: st.NeedsAck,
		Size: st.Size, Fragments: st.Fragments, Acknowledged: st.Acknowledged, Transmissions: st.Transmissions,
		Reason: st.Reason, Answer: st.Answer, Created: st.Created, Updated: st.Updated}
}

type sendResponse struct {
	ID      string     `json:"id"`
	Existed bool       `json:"existed"`
	Status  statusJSON `json:"status"`
}

type providerJSON struct {
	Domains  []string `json:"domains"`
	Services []string `json:"services"`
}

type servicesResponse struct {
	Epoch            pki.Epoch      `json:"epoch"`
	Accounts         []string       `json:"accounts"`
	FragmentCapacity int            `json:"fragment_capacity"`
	MaxPayload       int            `json:"max_payload"`
	Providers        []providerJSON `json:"providers"`
}

type receivedJSON struct {
	Seq  uint64    `json:"seq"`
	ID   string    `json:"id"`
	Data []byte    `json:"data"`
	At   time.Time `json:"at"`
}

type receivedResponse struct {
	Messages []receivedJSON `json:"messages"`
	// More says that further messages wait, left out for the size bound.
	More bool `json:"more"`
}

// account returns the engine of the account a request names (parameter or field account),
// or the only one when it names none.
func (a *Agent) account(name string) (string, Engine, error) {
	if name == "" {
		if len(a.order) != 1 {
			return "", nil, fmt.Errorf("%d accounts: name one with account (one of %v)", len(a.order), a.order)
		}
		name = a.order[0]
	}
	e, ok := a.accounts[name]
	if !ok {
		return "", nil, fmt.Errorf("no account %q (accounts: %v)", name, a.order)
	}
	return name, e, nil
}

func (a *Agent) services(w http.ResponseWriter, r *http.Request) {
	doc, err := a.cfg.PKI.Current(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, codeNoConsensus, fmt.Sprintf("no consensus document for the current epoch: %v", err))
		return
	}
	capacity := client.FragmentCapacity(doc.Parameters.Geometry)
	resp := servicesResponse{Epoch: doc.Epoch, Accounts: a.order, FragmentCapacity: capacity,
		MaxPayload: min(a.cfg.MaxPayload, client.MaxMessageSize(capacity)), Providers: []providerJSON{}}
	for i := range doc.Nodes {
		n := &doc.Nodes[i]
		if n.Role != pki.RoleProvider {
			continue
		}
		// A domain two providers claim is served by neither (pki.Document.Provider): listing
		// it would invite sends that fail.
		p := providerJSON{Domains: []string{}, Services: slices.Clone(n.Services)}
		for _, d := range n.Domains {
			if q, ok := doc.Provider(d); ok && q.Identity == n.Identity {
				p.Domains = append(p.Domains, d)
			}
		}
		if len(p.Domains) > 0 {
			resp.Providers = append(resp.Providers, p)
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *Agent) send(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(base64.StdEncoding.EncodedLen(a.cfg.MaxPayload)+maxJSONOverhead)))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("request body over %d bytes (data at most %d bytes before base64)", base64.StdEncoding.EncodedLen(a.cfg.MaxPayload)+maxJSONOverhead, a.cfg.MaxPayload))
			return
		}
		writeError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("reading the body: %v", err))
		return
	}
	req, err := decodeSend(body, a.cfg.MaxPayload)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, err.Error())
			return
		}
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	_, e, err := a.account(req.Account)
	if err != nil {
		writeError(w, http.StatusNotFound, codeNotFound, err.Error())
		return
	}
	// The consensus is looked at first so that its absence is told apart (503, try again) from
	// the engine's own failures (SendOnce wraps it without a sentinel).
	if _, err := a.cfg.PKI.Current(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, codeNoConsensus, fmt.Sprintf("no consensus document for the current epoch: %v", err))
		return
	}
	key := []byte(keyPrefix + req.IdempotencyKey)
	if req.IdempotencyKey == "" {
		var r [16]byte
		rand.Read(r[:])
		key = []byte(randomPrefix + hex.EncodeToString(r[:]))
	}
	dst := client.Destination{Domain: req.Domain, Service: req.Service, Recipient: req.Recipient, NoReply: req.Reply != nil && !*req.Reply}
	// The engine commits (fsync) before it returns; only then does the client get an id.
	id, existed, err := e.SendOnce(r.Context(), dst, req.Data, key)
	if err != nil {
		a.engineError(w, err)
		return
	}
	st, err := e.Status(id)
	if err != nil {
		a.engineError(w, err)
		return
	}
	code := http.StatusCreated
	if existed {
		code = http.StatusOK
	}
	writeJSON(w, code, sendResponse{ID: id.String(), Existed: existed, Status: toJSON(st)})
}

// engineError maps an engine error to an HTTP status (docs/spec/agent.md section 4).
func (a *Agent) engineError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, client.ErrUnknownMessage):
		writeError(w, http.StatusNotFound, codeNotFound, err.Error())
	case errors.Is(err, client.ErrUnknownDomain):
		writeError(w, http.StatusNotFound, codeUnknownDomain, err.Error())
	case errors.Is(err, client.ErrNoService):
		writeError(w, http.StatusNotFound, codeNoService, err.Error())
	case errors.Is(err, client.ErrDomainAway):
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusServiceUnavailable, codeDomainAway, err.Error())
	case errors.Is(err, client.ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, err.Error())
	case errors.Is(err, client.ErrNotFinished):
		writeError(w, http.StatusConflict, codeNotFinished, err.Error())
	case errors.Is(err, pki.ErrNoDocument):
		writeError(w, http.StatusServiceUnavailable, codeNoConsensus, err.Error())
	default:
		a.log.Error("agent: engine call failed", "err", err)
		writeError(w, http.StatusInternalServerError, codeInternal, err.Error())
	}
}

func (a *Agent) list(w http.ResponseWriter, r *http.Request) {
	_, e, err := a.account(r.URL.Query().Get("account"))
	if err != nil {
		writeError(w, http.StatusNotFound, codeNotFound, err.Error())
		return
	}
	all, err := e.List()
	if err != nil {
		a.engineError(w, err)
		return
	}
	out := make([]statusJSON, 0, len(all))
	for _, st := range all {
		out = append(out, toJSON(st))
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out})
}

// waitParams are the long-poll parameters of a query: wait (a Go duration, at most maxWait) and
// after (the updated time of the status the client has, RFC 3339).
type waitParams struct {
	wait  time.Duration
	after time.Time
	has   bool // after was given
}

func parseWait(q map[string][]string, maxWait time.Duration) (waitParams, error) {
	var p waitParams
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if s := get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > maxWait {
			return p, fmt.Errorf("wait=%q: want a duration from 0s to %v, like 30s", s, maxWait)
		}
		p.wait = d
	}
	if s := get("after"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return p, fmt.Errorf("after=%q: want the updated time of a status (RFC 3339)", s)
		}
		p.after, p.has = t, true
	}
	return p, nil
}

// waitFor polls cond every interval until it holds, wait has passed, or the request ends.
// A long-poll holds a waiter slot; without one it gets 503 (reported by the false result).
func (a *Agent) waitFor(w http.ResponseWriter, r *http.Request, wait, interval time.Duration, cond func() (bool, error)) (ok bool, err error) {
	done, err := cond()
	if err != nil || done || wait == 0 {
		return true, err
	}
	select {
	case a.waiters <- struct{}{}:
		defer func() { <-a.waiters }()
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, codeBusy, fmt.Sprintf("%d long-polls waiting, the most the agent holds at once; retry later or poll without wait", cap(a.waiters)))
		return false, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case <-t.C:
		}
		if done, err := cond(); err != nil || done {
			return true, err
		}
	}
}

func (a *Agent) status(w http.ResponseWriter, r *http.Request) {
	id, err := client.ParseMessageID(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	q := r.URL.Query()
	_, e, err := a.account(q.Get("account"))
	if err != nil {
		writeError(w, http.StatusNotFound, codeNotFound, err.Error())
		return
	}
	p, err := parseWait(q, a.cfg.MaxWait)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	var st client.Status
	ok, err := a.waitFor(w, r, p.wait, a.cfg.PollInterval, func() (bool, error) {
		var err error
		st, err = e.Status(id)
		if err != nil {
			return false, err
		}
		// Done: finished, or changed since the status the client has.
		return st.State.Finished() || p.has && !st.Updated.Equal(p.after), nil
	})
	if !ok {
		return
	}
	if err != nil {
		a.engineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toJSON(st))
}

func (a *Agent) forget(w http.ResponseWriter, r *http.Request) {
	id, err := client.ParseMessageID(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	_, e, err := a.account(r.URL.Query().Get("account"))
	if err != nil {
		writeError(w, http.StatusNotFound, codeNotFound, err.Error())
		return
	}
	// Only the agent's own messages: mailproxy keeps a mail's status until it has reported
	// the outcome (a bounce for a failure), and forgetting it first would lose the bounce.
	st, err := e.Status(id)
	if err != nil {
		a.engineError(w, err)
		return
	}
	if !Owns(st) {
		writeError(w, http.StatusForbidden, codeNotAgent, fmt.Sprintf("message %s was not sent through the agent: mailproxy forgets it itself", id))
		return
	}
	if err := e.Forget(id); err != nil {
		a.engineError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *Agent) received(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	_, e, err := a.account(q.Get("account"))
	if err != nil {
		writeError(w, http.StatusNotFound, codeNotFound, err.Error())
		return
	}
	p, err := parseWait(q, a.cfg.MaxWait)
	if err != nil || p.has {
		if err == nil {
			err = errors.New("after applies to status only")
		}
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	var msgs []client.Received
	ok, err := a.waitFor(w, r, p.wait, a.cfg.ReceivePollInterval, func() (bool, error) {
		var err error
		msgs, err = e.Received()
		return len(msgs) > 0, err
	})
	if !ok {
		return
	}
	if err != nil {
		a.engineError(w, err)
		return
	}
	resp := receivedResponse{Messages: []receivedJSON{}}
	size := 0
	for i, m := range msgs {
		if i > 0 && size+len(m.Data) > a.cfg.MaxReceivedBytes {
			resp.More = true
			break
		}
		size += len(m.Data)
		resp.Messages = append(resp.Messages, receivedJSON{Seq: m.Seq, ID: m.ID.String(), Data: m.Data, At: m.At})
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *Agent) ack(w http.ResponseWriter, r *http.Request) {
	seq, err := parseSeq(r.PathValue("seq"))
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	_, e, err := a.account(r.URL.Query().Get("account"))
	if err != nil {
		writeError(w, http.StatusNotFound, codeNotFound, err.Error())
		return
	}
	if err := e.DeleteReceived(seq); err != nil {
		a.engineError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// parseSeq parses a received message's seq: decimal digits only, no sign, no leading zero.
func parseSeq(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("seq %q: want the decimal seq of a received message", s)
	}
	return n, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

type errorJSON struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeError(w http.ResponseWriter, code int, c, msg string) {
	writeJSON(w, code, errorJSON{Error: msg, Code: c})
}
