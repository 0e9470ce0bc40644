// Package httpapi serves the directory authority over HTTP (docs/spec/pki.md section 10): the
// public API (documents, votes, signatures, descriptor uploads, the status page, /metrics) and
// the admin API for approving node identities, which the daemon binds to loopback only.
package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/panoramix-mixnet/panoramix/directory/internal/authority"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// Public returns the public API handler. gatherer serves /metrics.
func Public(a *authority.Authority, gatherer prometheus.Gatherer, log *slog.Logger) http.Handler {
	s := &server{a: a, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/consensus/{epoch}", s.epochGetter(a.Document, "no consensus document for epoch %d (yet)"))
	mux.HandleFunc("GET /v1/vote/{epoch}", s.epochGetter(a.Vote, "no vote for epoch %d"))
	mux.HandleFunc("GET /v1/signature/{epoch}", s.epochGetter(a.Signature, "no signature for epoch %d"))
	mux.HandleFunc("POST /v1/descriptor", s.postDescriptor)
	mux.HandleFunc("GET /status", s.status)
	mux.Handle("GET /{$}", http.RedirectHandler("/status", http.StatusSeeOther))
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}

// Admin returns the admin API handler.
func Admin(a *authority.Authority, log *slog.Logger) http.Handler {
	s := &server{a: a, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/nodes", s.listNodes)
	mux.HandleFunc("PUT /admin/v1/nodes/{id}", s.approve)
	mux.HandleFunc("DELETE /admin/v1/nodes/{id}", s.nodeAction(a.Remove, "removed"))
	return mux
}

type server struct {
	a   *authority.Authority
	log *slog.Logger
}

// fail answers err: an *authority.Error with its status and reason, anything else as 500.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *authority.Error
	if errors.As(err, &e) {
		http.Error(w, e.Msg, e.Status)
		return
	}
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

// epochArg reads the {epoch} path value: a decimal number or "current".
func (s *server) epochArg(r *http.Request) (pki.Epoch, error) {
	v := r.PathValue("epoch")
	if v == "current" {
		e, err := s.a.CurrentEpoch()
		return e, err
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != v {
		return 0, &authority.Error{Status: http.StatusBadRequest, Msg: "epoch must be a decimal number or \"current\""}
	}
	return pki.Epoch(n), nil
}

func (s *server) epochGetter(get func(pki.Epoch) ([]byte, bool, error), missing string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		e, err := s.epochArg(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		b, ok, err := get(e)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if !ok {
			http.Error(w, fmt.Sprintf(missing, uint64(e)), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Panoramix-Epoch", strconv.FormatUint(uint64(e), 10))
		w.Write(b)
	}
}

func (s *server) postDescriptor(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, pki.MaxDescriptorSize))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			http.Error(w, "descriptor over "+strconv.Itoa(pki.MaxDescriptorSize)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.a.PostDescriptor(b); err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "accepted\n")
}

// approvalView is one entry of GET /admin/v1/nodes (docs/spec/pki.md section 10).
type approvalView struct {
	Identity keys.IdentityPublicKey `json:"identity"`
	Role     string                 `json:"role"`
	Domains  []string               `json:"domains"`
	// Legacy: approved before approvals named a role; it counts as a mix approval.
	Legacy bool `json:"legacy,omitempty"`
}

func (s *server) listNodes(w http.ResponseWriter, r *http.Request) {
	list, err := s.a.Approved()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []approvalView{}
	for _, a := range list {
		out = append(out, approvalView{Identity: a.Identity, Role: a.Role.String(), Domains: append([]string{}, a.Domains...), Legacy: a.Legacy})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// maxApprovalBody bounds an approval request: MaxDomains quoted names of at most 253 bytes and
// the role take under 9 KB.
const maxApprovalBody = 16 << 10

const approvalUsage = `the body is the approval as JSON: {"role": "mix"}, or {"role": "provider", "domains": ["example.org"]} with the mail domains the provider may serve`

// approve approves a node with the role and mail domains of the JSON body (docs/spec/pki.md
// section 10): an approval binds what the node may publish, not only who it is.
func (s *server) approve(w http.ResponseWriter, r *http.Request) {
	id, err := keys.ParseIdentityPublicKey(r.PathValue("id"))
	if err != nil {
		http.Error(w, "node identity: "+err.Error(), http.StatusBadRequest)
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxApprovalBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			http.Error(w, "approval over "+strconv.Itoa(maxApprovalBody)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(bytes.TrimSpace(b)) == 0 {
		http.Error(w, "no approval: "+approvalUsage, http.StatusBadRequest)
		return
	}
	var ap pki.Approval
	if err := json.Unmarshal(b, &ap); err != nil {
		http.Error(w, err.Error()+"; "+approvalUsage, http.StatusBadRequest)
		return
	}
	if err := s.a.Approve(id, ap); err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "approved "+id.String()+" as "+ap.String()+"\n")
}

func (s *server) nodeAction(act func(keys.IdentityPublicKey) error, done string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := keys.ParseIdentityPublicKey(r.PathValue("id"))
		if err != nil {
			http.Error(w, "node identity: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := act(id); err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, done+" "+id.String()+"\n")
	}
}
