package httpapi

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/directory/internal/authority"
	"github.com/panoramix-mixnet/panoramix/directory/internal/store"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

func newServers(t *testing.T) (pub, admin *httptest.Server) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	k, _ := keys.GenerateIdentityKey(rand.Reader)
	p := pki.DefaultParameters()
	p.EpochLength = 10 * time.Second
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	a, err := authority.New(authority.Config{Identity: k, Threshold: 1, Parameters: p, Store: st, Logger: log, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	pub = httptest.NewServer(Public(a, reg, log))
	admin = httptest.NewServer(Admin(a, log))
	t.Cleanup(pub.Close)
	t.Cleanup(admin.Close)
	return pub, admin
}

func do(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminAPI(t *testing.T) {
	_, admin := newServers(t)
	id, _ := keys.GenerateIdentityKey(rand.Reader)
	node := admin.URL + "/admin/v1/nodes/" + id.Public().String()
	if code, body := do(t, http.MethodPut, node); code != http.StatusOK || !strings.Contains(body, "approved") {
		t.Errorf("PUT: %d %q", code, body)
	}
	if code, _ := do(t, http.MethodPut, node); code != http.StatusOK {
		t.Errorf("second PUT: %d, want 200 (idempotent)", code)
	}
	code, body := do(t, http.MethodGet, admin.URL+"/admin/v1/nodes")
	var list []keys.IdentityPublicKey
	if code != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 || !list[0].Equal(id.Public()) {
		t.Errorf("GET list: %d %q", code, body)
	}
	if code, _ := do(t, http.MethodDelete, node); code != http.StatusOK {
		t.Errorf("DELETE: %d", code)
	}
	if code, body := do(t, http.MethodDelete, node); code != http.StatusNotFound || body == "" {
		t.Errorf("second DELETE: %d %q, want 404 with a reason", code, body)
	}
	if code, body := do(t, http.MethodPut, admin.URL+"/admin/v1/nodes/XYZ"); code != http.StatusBadRequest || body == "" {
		t.Errorf("PUT bad id: %d %q", code, body)
	}
	if code, _ := do(t, http.MethodPost, node); code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", code)
	}
	if code, body := do(t, http.MethodGet, admin.URL+"/admin/v1/nodes"); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Errorf("empty list: %d %q", code, body)
	}
}

func TestPublicAPIRefusals(t *testing.T) {
	pub, _ := newServers(t)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/v1/consensus/007", http.StatusBadRequest},
		{http.MethodGet, "/v1/consensus/-1", http.StatusBadRequest},
		{http.MethodGet, "/v1/consensus/18446744073709551616", http.StatusBadRequest},
		{http.MethodGet, "/v1/consensus/5", http.StatusNotFound},
		{http.MethodGet, "/v1/vote/5", http.StatusNotFound},
		{http.MethodGet, "/v1/signature/current", http.StatusNotFound},
		{http.MethodGet, "/v1/descriptor", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/v1/consensus/5", http.StatusMethodNotAllowed},
		{http.MethodGet, "/admin/v1/nodes", http.StatusNotFound}, // admin is not on the public listener
		{http.MethodGet, "/status", http.StatusOK},
	} {
		if code, body := do(t, tc.method, pub.URL+tc.path); code != tc.want || (code >= 400 && body == "") {
			t.Errorf("%s %s: %d %q, want %d with a reason", tc.method, tc.path, code, body, tc.want)
		}
	}
}
