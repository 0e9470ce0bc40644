package node

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/provider"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// TestAdminReadsViaLink: the admin API shows reads_via_link and clears it, and only clears it;
// a client's next retrieve-mail after a clear marks the user again (the cache was dropped).
func TestAdminReadsViaLink(t *testing.T) {
	tn := newTestNet(t)
	cfg := tn.config("alpha", "provider", t.TempDir())
	cfg.AdminAddress = "127.0.0.1:30003"
	n, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.close)
	for _, name := range []string{"bob", "carol"} {
		k, _ := keys.GenerateLinkKey(rand.Reader)
		if err := n.Store().AddUser(provider.User{Name: name, LinkKey: k.Public()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.markViaLink("bob"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.adminHandler())
	t.Cleanup(srv.Close)
	token, err := adminauth.Load(cfg.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body string) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, srv.URL+path, rd)
		adminauth.SetHeaders(req, token)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	viaLink := func(body string) bool {
		t.Helper()
		var u provider.User
		if err := json.Unmarshal([]byte(body), &u); err != nil {
			t.Fatalf("user %q: %v", body, err)
		}
		return u.ReadsViaLink
	}

	if code, body := call(http.MethodGet, "/admin/v1/users/bob", ""); code != http.StatusOK || !viaLink(body) {
		t.Fatalf("GET bob: %d %s", code, body)
	}
	if code, body := call(http.MethodGet, "/admin/v1/users", ""); code != http.StatusOK || strings.Count(body, `"reads_via_link":true`) != 1 || strings.Count(body, `"reads_via_link":false`) != 1 {
		t.Fatalf("GET users: %d %s", code, body)
	}
	for _, bad := range []struct {
		path, body string
		code       int
	}{
		{"/admin/v1/users/bob", `{"reads_via_link":true}`, http.StatusBadRequest},
		{"/admin/v1/users/bob", `{}`, http.StatusBadRequest},
		{"/admin/v1/users/bob", `{"reads_via_link":false,"quota_bytes":1}`, http.StatusBadRequest},
		{"/admin/v1/users/nobody", `{"reads_via_link":false}`, http.StatusNotFound},
	} {
		if code, body := call(http.MethodPatch, bad.path, bad.body); code != bad.code {
			t.Errorf("PATCH %s %s: %d %s, want %d", bad.path, bad.body, code, body, bad.code)
		}
	}
	if u, _ := n.Store().User("bob"); !u.ReadsViaLink {
		t.Fatal("a refused PATCH cleared the mark")
	}
	if code, body := call(http.MethodPatch, "/admin/v1/users/bob", `{"reads_via_link":false}`); code != http.StatusOK || viaLink(body) {
		t.Fatalf("PATCH bob false: %d %s", code, body)
	}
	if u, _ := n.Store().User("bob"); u.ReadsViaLink {
		t.Fatal("the mark survived the clear")
	}
	if code, _ := call(http.MethodGet, "/admin/v1/users/nobody", ""); code != http.StatusNotFound {
		t.Fatalf("GET nobody: %d", code)
	}
	// Bob's client still reads through the link: its next retrieve-mail marks him again.
	if err := n.markViaLink("bob"); err != nil {
		t.Fatal(err)
	}
	if u, _ := n.Store().User("bob"); !u.ReadsViaLink {
		t.Fatal("a retrieve-mail after the clear did not mark bob again")
	}
	if v := metricValue(t, n, "mixd_users_reading_via_link", nil); v != 1 {
		t.Fatalf("mixd_users_reading_via_link = %v, want 1", v)
	}
}
