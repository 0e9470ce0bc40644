package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/provider"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// MaxAdminBody bounds admin API request bodies.
const MaxAdminBody = 64 << 10

// UserRequest is the body of POST /admin/v1/users.
type UserRequest struct {
	Name       string `json:"name"`
	LinkKey    string `json:"link_key"`
	QuotaBytes int64  `json:"quota_bytes"`
}

// UserPatch is the body of PATCH /admin/v1/users/{name}: the fields to change, absent ones
// unchanged.
type UserPatch struct {
	// ReadsViaLink may only be cleared (false): the user's mail goes to IMAP or LMTP again.
	// Only the user's client sets it, by its first retrieve-mail (docs/spec/services.md 6.1).
	ReadsViaLink *bool `json:"reads_via_link"`
}

// PasswordRequest is the body of PUT /admin/v1/users/{name}/password.
type PasswordRequest struct {
	Password string `json:"password"`
}

// Status is the body of GET /admin/v1/status.
type Status struct {
	Identity string `json:"identity"`
	Role     string `json:"role"`
	Listen   string `json:"listen"`
	Epoch    uint64 `json:"epoch"`
	HaveDoc  bool   `json:"have_document"`
}

// adminHandler serves the provider's admin API (loopback only, see config):
// GET /admin/v1/status, GET/POST /admin/v1/users, GET/PATCH/DELETE /admin/v1/users/{name},
// PUT /admin/v1/users/{name}/password. Every request
// passes adminauth.Require first: a web page in the operator's browser reaches loopback too.
func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/status", func(w http.ResponseWriter, r *http.Request) {
		v := n.follow.view()
		writeJSON(w, http.StatusOK, Status{Identity: n.Identity().String(), Role: n.role.String(), Listen: fmt.Sprint(n.addr), Epoch: uint64(v.epoch), HaveDoc: v.current() != nil})
	})
	mux.HandleFunc("GET /admin/v1/users", func(w http.ResponseWriter, r *http.Request) {
		users, err := n.store.Users()
		if err != nil {
			httpError(w, http.StatusInternalServerError, err)
			return
		}
		if users == nil {
			users = []provider.User{}
		}
		writeJSON(w, http.StatusOK, users)
	})
	mux.HandleFunc("POST /admin/v1/users", func(w http.ResponseWriter, r *http.Request) {
		var req UserRequest
		if !decodeBody(w, r, &req) {
			return
		}
		k, err := keys.ParseLinkPublicKey(strings.TrimSpace(req.LinkKey))
		if err != nil {
			httpError(w, http.StatusBadRequest, fmt.Errorf("link_key: %w", err))
			return
		}
		u := provider.User{Name: req.Name, LinkKey: k, QuotaBytes: req.QuotaBytes}
		if err := u.Validate(); err != nil {
			httpError(w, http.StatusBadRequest, err)
			return
		}
		// The mail account first: a user without one could be sent mail that has nowhere to go.
		if n.accounts != nil {
			if err := n.accounts.CreateUser(u.Name, u.QuotaBytes); err != nil {
				httpError(w, http.StatusConflict, fmt.Errorf("mail account: %w", err))
				return
			}
		}
		if err := n.store.AddUser(u); err != nil {
			if n.accounts != nil {
				_ = n.accounts.DeleteUser(u.Name)
			}
			code := http.StatusBadRequest
			if errors.Is(err, provider.ErrUserExists) {
				code = http.StatusConflict
			}
			httpError(w, code, err)
			return
		}
		created, _ := n.store.User(u.Name)
		writeJSON(w, http.StatusCreated, created)
	})
	mux.HandleFunc("GET /admin/v1/users/{name}", func(w http.ResponseWriter, r *http.Request) {
		u, err := n.store.User(r.PathValue("name"))
		if err != nil {
			httpError(w, userErrorCode(err), err)
			return
		}
		writeJSON(w, http.StatusOK, u)
	})
	mux.HandleFunc("PATCH /admin/v1/users/{name}", func(w http.ResponseWriter, r *http.Request) {
		var req UserPatch
		if !decodeBody(w, r, &req) {
			return
		}
		switch {
		case req.ReadsViaLink == nil:
			httpError(w, http.StatusBadRequest, errors.New("request body: nothing to change (the field is reads_via_link)"))
			return
		case *req.ReadsViaLink:
			httpError(w, http.StatusBadRequest, errors.New("reads_via_link: only false is allowed; the user's client sets it by reading its mail through the link"))
			return
		}
		name := r.PathValue("name")
		if err := n.clearViaLink(name); err != nil {
			httpError(w, userErrorCode(err), err)
			return
		}
		u, err := n.store.User(name)
		if err != nil {
			httpError(w, userErrorCode(err), err)
			return
		}
		n.log.Info("user's mail goes to the mailbox backend again (reads_via_link cleared by the operator)", "user", name)
		writeJSON(w, http.StatusOK, u)
	})
	mux.HandleFunc("PUT /admin/v1/users/{name}/password", func(w http.ResponseWriter, r *http.Request) {
		if n.accounts == nil {
			httpError(w, http.StatusNotFound, errors.New("this provider has no built-in mailboxes ([mailbox] backend is not \"embedded\"): passwords live in its own mail server"))
			return
		}
		var req PasswordRequest
		if !decodeBody(w, r, &req) {
			return
		}
		// The same minimum as mixctl's: the daemon, not the client, is where it holds.
		if len(req.Password) < adminauth.MinPasswordLength {
			httpError(w, http.StatusBadRequest, fmt.Errorf("password: at least %d characters", adminauth.MinPasswordLength))
			return
		}
		name := r.PathValue("name")
		if _, err := n.store.User(name); err != nil {
			httpError(w, http.StatusNotFound, err)
			return
		}
		if err := n.accounts.SetPassword(name, req.Password); err != nil {
			httpError(w, http.StatusBadRequest, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /admin/v1/users/{name}", func(w http.ResponseWriter, r *http.Request) {
		if n.accounts != nil {
			if err := n.accounts.DeleteUser(r.PathValue("name")); err != nil {
				n.log.Warn("deleting mail account", "user", r.PathValue("name"), "err", err)
			}
		}
		if err := n.store.RemoveUser(r.PathValue("name")); err != nil {
			httpError(w, userErrorCode(err), err)
			return
		}
		n.forgetViaLink(r.PathValue("name"))
		w.WriteHeader(http.StatusNoContent)
	})
	return adminauth.Require(n.adminToken, mux)
}

// decodeBody reads the request's JSON body into v, at most MaxAdminBody bytes and no unknown
// field; on failure it answers 400 and returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		httpError(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
		return false
	}
	return true
}

// userErrorCode is the status of a store error about one user.
func userErrorCode(err error) int {
	if errors.Is(err, provider.ErrUnknownUser) {
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, err error) {
	http.Error(w, err.Error(), code)
}
