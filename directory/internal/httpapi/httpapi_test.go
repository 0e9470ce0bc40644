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
	return doBody(t, method, url, "")
}

func doBody(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type listed struct {
	Identity keys.IdentityPublicKey `json:"identity"`
	Role     string                 `json:"role"`
	Domains  []string               `json:"domains"`
}

func TestAdminAPI(t *testing.T) {
	_, admin := newServers(t)
	id, _ := keys.GenerateIdentityKey(rand.Reader)
	node := admin.URL + "/admin/v1/nodes/" + id.Public().String()
	const asProvider = `{"role": "provider", "domains": ["mail.beta.example", "beta.example"]}`
	if code, body := doBody(t, http.MethodPut, node, asProvider); code != http.StatusOK || !strings.Contains(body, "approved") || !strings.Contains(body, "provider of beta.example, mail.beta.example") {
		t.Errorf("PUT: %d %q", code, body)
	}
	if code, _ := doBody(t, http.MethodPut, node, asProvider); code != http.StatusOK {
		t.Errorf("second PUT: %d, want 200 (idempotent)", code)
	}
	code, body := do(t, http.MethodGet, admin.URL+"/admin/v1/nodes")
	var list []listed
	if code != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 || !list[0].Identity.Equal(id.Public()) ||
		list[0].Role != "provider" || strings.Join(list[0].Domains, " ") != "beta.example mail.beta.example" {
		t.Errorf("GET list: %d %q", code, body)
	}
	if code, _ := do(t, http.MethodDelete, node); code != http.StatusOK {
		t.Errorf("DELETE: %d", code)
	}
	if code, body := do(t, http.MethodDelete, node); code != http.StatusNotFound || body == "" {
		t.Errorf("second DELETE: %d %q, want 404 with a reason", code, body)
	}
	if code, body := doBody(t, http.MethodPut, admin.URL+"/admin/v1/nodes/XYZ", `{"role": "mix"}`); code != http.StatusBadRequest || body == "" {
		t.Errorf("PUT bad id: %d %q", code, body)
	}
	if code, _ := do(t, http.MethodPost, node); code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", code)
	}
	if code, body := do(t, http.MethodGet, admin.URL+"/admin/v1/nodes"); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Errorf("empty list: %d %q", code, body)
	}
}

// Issue 13, finding 1: an approval names the role and a provider's domains; a request that
// does not, or names a domain approved for another node, approves nothing.
func TestAdminApproveRefusals(t *testing.T) {
	_, admin := newServers(t)
	a, _ := keys.GenerateIdentityKey(rand.Reader)
	b, _ := keys.GenerateIdentityKey(rand.Reader)
	nodeA, nodeB := admin.URL+"/admin/v1/nodes/"+a.Public().String(), admin.URL+"/admin/v1/nodes/"+b.Public().String()
	if code, body := doBody(t, http.MethodPut, nodeA, `{"role": "provider", "domains": ["beta.example"]}`); code != http.StatusOK {
		t.Fatalf("PUT: %d %q", code, body)
	}
	for _, tc := range []struct {
		name, body, want string
		code             int
	}{
		{"no body", "", "role", http.StatusBadRequest},
		{"no role", `{"domains": ["x.example"]}`, "role", http.StatusBadRequest},
		{"unknown role", `{"role": "exit"}`, "role", http.StatusBadRequest},
		{"provider without domains", `{"role": "provider"}`, "at least one", http.StatusBadRequest},
		{"mix with domains", `{"role": "mix", "domains": ["x.example"]}`, "no mail domain", http.StatusBadRequest},
		{"bad domain", `{"role": "provider", "domains": ["Beta.Example"]}`, "domain", http.StatusBadRequest},
		{"unknown field", `{"role": "mix", "layer": 1}`, "layer", http.StatusBadRequest},
		{"trailing data", `{"role": "mix"} {}`, "after", http.StatusBadRequest},
		{"taken domain", `{"role": "provider", "domains": ["beta.example"]}`, a.Public().String(), http.StatusConflict},
		{"too many domains", `{"role": "provider", "domains": [` + strings.Repeat(`"d.example",`, pki.MaxDomains) + `"e.example"]}`, "limit", http.StatusBadRequest},
		{"oversize", `{"role": "provider", "domains": ["` + strings.Repeat("a", 20000) + `"]}`, "bytes", http.StatusRequestEntityTooLarge},
	} {
		code, body := doBody(t, http.MethodPut, nodeB, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want %d mentioning %q", tc.name, code, body, tc.code, tc.want)
		}
	}
	_, body := do(t, http.MethodGet, admin.URL+"/admin/v1/nodes")
	if strings.Contains(body, b.Public().String()) {
		t.Errorf("a refused approval is listed: %s", body)
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
