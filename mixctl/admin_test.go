package main

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
)

// adminRequest sends one raw request to an admin API as a web page (or a local client) would:
// host is the Host header, token the bearer token ("" for none), contentType the body's type.
func adminRequest(t *testing.T, method, addr, host, path, token, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body, req.ContentLength = nil, 0
	}
	req.Host = host
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// waitListening waits until addr accepts TCP connections.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAdminAPIRefusesWebPages attacks the admin APIs of a real provider (mixd) and a real
// directory authority as a hostile web page in the operator's browser can (issue 13, finding 7):
// a cross-site form POST (text/plain, no token) that creates a user, and DNS rebinding (the
// page's own host name resolved to 127.0.0.1, so the Host header is the attacker's) even with a
// valid token. Both must be refused with nothing changed, while mixctl with the token file works
// and the daemon refuses an empty password (finding 8).
func TestAdminAPIRefusesWebPages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real directory and mixd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	repo, err := testnet.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := testnet.Build(ctx, repo, bin, testnet.Programs...); err != nil {
		t.Fatal(err)
	}
	n, err := testnet.Start(ctx, testnet.Options{Dir: t.TempDir(), BinDir: bin, Providers: []string{"alpha.localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := n.Stop(); err != nil {
			t.Error(err)
		}
	}()
	p := n.Provider("alpha.localhost")
	waitListening(t, p.Admin)
	waitListening(t, n.DirAdmin)
	provToken, dirToken := p.AdminToken, n.DirAdminToken
	pt, err := adminauth.Load(provToken)
	if err != nil {
		t.Fatal(err)
	}
	dt, err := adminauth.Load(dirToken)
	if err != nil {
		t.Fatal(err)
	}
	users := func() string {
		code, body := adminRequest(t, http.MethodGet, p.Admin, p.Admin, "/admin/v1/users", pt, "", "")
		if code != http.StatusOK {
			t.Fatalf("listing users with the token: %d %s", code, body)
		}
		return body
	}
	link, _ := keys.GenerateLinkKey(rand.Reader)

	// A page's <form enctype="text/plain" method="post"> with one input named
	// {"name":"mallory",...} and an empty value sends that JSON followed by "=".
	form := `{"name":"mallory","link_key":"` + link.Public().String() + `","quota_bytes":1024}=`
	if code, body := adminRequest(t, http.MethodPost, p.Admin, p.Admin, "/admin/v1/users", "", "text/plain", form); code != http.StatusUnauthorized {
		t.Errorf("cross-site form POST creating a user: %d %s, want 401", code, body)
	}
	// The same with the token but still text/plain: only application/json carries a body.
	if code, body := adminRequest(t, http.MethodPost, p.Admin, p.Admin, "/admin/v1/users", pt, "text/plain", form); code != http.StatusUnsupportedMediaType || !strings.Contains(body, `"error"`) {
		t.Errorf("text/plain POST with the token: %d %s, want 415 with a JSON error", code, body)
	}
	// DNS rebinding: evil.example resolves to 127.0.0.1; the Host header stays the attacker's.
	rebound := "evil.example:" + port(p.Admin)
	json := `{"name":"eve","link_key":"` + link.Public().String() + `","quota_bytes":1024}`
	if code, body := adminRequest(t, http.MethodPost, p.Admin, rebound, "/admin/v1/users", pt, "application/json", json); code != http.StatusForbidden {
		t.Errorf("DNS-rebound POST creating a user (valid token): %d %s, want 403", code, body)
	}
	if u := users(); strings.Contains(u, "mallory") || strings.Contains(u, "eve") {
		t.Errorf("a refused request created a user: %s", u)
	}

	// The operator's mixctl with the token file works.
	if code, out, errOut := mixctl("user", "add", "alice", "--link-key", link.Public().String(), "--admin", p.Admin, "--admin-token", provToken); code != 0 || !strings.Contains(out, "added user alice") {
		t.Errorf("mixctl user add with the token file: %d %q %q", code, out, errOut)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("correct horse battery\n"), 0o600)
	if code, out, errOut := mixctl("user", "passwd", "alice", "--password-file", pwFile, "--admin", p.Admin, "--admin-token", provToken); code != 0 {
		t.Errorf("mixctl user passwd with the token file: %d %q %q", code, out, errOut)
	}
	if u := users(); !strings.Contains(u, `"alice"`) {
		t.Errorf("alice not created by mixctl: %s", u)
	}
	// Issue 20: the operator sends alice's mail to IMAP again; the list shows the setting.
	if code, out, errOut := mixctl("user", "set", "alice", "--reads-via-link=false", "--admin", p.Admin, "--admin-token", provToken); code != 0 || !strings.Contains(out, "reads via link no") {
		t.Errorf("mixctl user set --reads-via-link=false: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := mixctl("user", "list", "--admin", p.Admin, "--admin-token", provToken); code != 0 || !strings.Contains(out, "READS VIA LINK") {
		t.Errorf("mixctl user list: %d %q %q", code, out, errOut)
	}
	// Rebinding cannot set alice's password either.
	if code, body := adminRequest(t, http.MethodPut, p.Admin, rebound, "/admin/v1/users/alice/password", pt, "application/json", `{"password":"attacker-chosen"}`); code != http.StatusForbidden {
		t.Errorf("DNS-rebound password change (valid token): %d %s, want 403", code, body)
	}
	// Finding 8: the daemon itself refuses a password shorter than mixctl's minimum (carol is
	// created by a request like mixctl's, so this holds whatever mixctl does).
	carol, _ := keys.GenerateLinkKey(rand.Reader)
	if code, body := adminRequest(t, http.MethodPost, p.Admin, p.Admin, "/admin/v1/users", pt, "application/json", `{"name":"carol","link_key":"`+carol.Public().String()+`","quota_bytes":1024}`); code != http.StatusCreated {
		t.Errorf("creating carol: %d %s", code, body)
	}
	for _, pw := range []string{"", "1234567"} {
		if code, body := adminRequest(t, http.MethodPut, p.Admin, p.Admin, "/admin/v1/users/carol/password", pt, "application/json", `{"password":"`+pw+`"}`); code != http.StatusBadRequest {
			t.Errorf("password %q: %d %s, want 400", pw, code, body)
		}
	}
	if code, body := adminRequest(t, http.MethodPut, p.Admin, p.Admin, "/admin/v1/users/carol/password", pt, "application/json", `{"password":"12345678"}`); code != http.StatusNoContent {
		t.Errorf("password of 8 characters: %d %s, want 204", code, body)
	}
	// A wrong token file: mixctl says which file it used and that the daemon refused it.
	wrong := filepath.Join(t.TempDir(), "admin.token")
	os.WriteFile(wrong, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	if code, _, errOut := mixctl("user", "list", "--admin", p.Admin, "--admin-token", wrong); code != 1 || !strings.Contains(errOut, "401") || !strings.Contains(errOut, wrong) {
		t.Errorf("mixctl with a wrong token: %d %q, want a 401 naming %s", code, errOut, wrong)
	}
	missing := filepath.Join(t.TempDir(), "nothing")
	if code, _, errOut := mixctl("user", "list", "--admin", p.Admin, "--admin-token", missing); code != 1 || !strings.Contains(errOut, missing) {
		t.Errorf("mixctl with a missing token file: %d %q, want an error naming %s", code, errOut, missing)
	}

	// The directory: a rebound page approves its own node with a stolen token: refused.
	evilNode, _ := keys.GenerateIdentityKey(rand.Reader)
	evilID := evilNode.Public().String()
	// The page asks for the provider role of alpha.localhost (finding 1's takeover).
	approval := `{"role":"provider","domains":["alpha.localhost"]}`
	if code, body := adminRequest(t, http.MethodPut, n.DirAdmin, "evil.example:"+port(n.DirAdmin), "/admin/v1/nodes/"+evilID, dt, "application/json", approval); code != http.StatusForbidden {
		t.Errorf("DNS-rebound node approval (valid token): %d %s, want 403", code, body)
	}
	if code, body := adminRequest(t, http.MethodPut, n.DirAdmin, n.DirAdmin, "/admin/v1/nodes/"+evilID, "", "application/json", approval); code != http.StatusUnauthorized {
		t.Errorf("node approval without a token: %d %s, want 401", code, body)
	}
	if code, body := adminRequest(t, http.MethodGet, n.DirAdmin, n.DirAdmin, "/admin/v1/nodes", dt, "", ""); code != http.StatusOK || strings.Contains(body, evilID) {
		t.Errorf("approved nodes after the refused requests: %d %s", code, body)
	}
	// mixctl with the directory's token file approves a node.
	good, _ := keys.GenerateIdentityKey(rand.Reader)
	goodID := good.Public().String()
	if code, out, errOut := mixctl("dir", "approve", "--admin", n.DirAdmin, "--admin-token", dirToken, goodID, "--role", "mix"); code != 0 || !strings.Contains(out, "approved") {
		t.Errorf("mixctl dir approve with the token file: %d %q %q", code, out, errOut)
	}
	if code, body := adminRequest(t, http.MethodGet, n.DirAdmin, n.DirAdmin, "/admin/v1/nodes", dt, "", ""); code != http.StatusOK || !strings.Contains(body, goodID) {
		t.Errorf("approved nodes after mixctl: %d %s", code, body)
	}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
