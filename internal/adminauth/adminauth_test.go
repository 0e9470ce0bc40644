package adminauth

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultFile)
	a, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("created token file: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}
	s, err := Load(path)
	if err != nil || len(s) != 2*tokenBytes {
		t.Fatalf("Load of the created file: %q %v", s, err)
	}
	b, err := LoadOrCreate(path)
	if err != nil || a.sum != b.sum {
		t.Fatalf("second start changed the token: %v", err)
	}

	// A file others can read is refused, with the fix in the message.
	os.Chmod(path, 0o640)
	if _, err := LoadOrCreate(path); err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("group-readable token file: %v", err)
	}
	for _, bad := range []string{"", "short", strings.Repeat("a", 31), strings.Repeat("a", maxTokenLength+1), strings.Repeat("a", 40) + " b", strings.Repeat("é", 40), strings.Repeat("a", maxFileSize+1)} {
		p := filepath.Join(t.TempDir(), "t")
		os.WriteFile(p, []byte(bad), 0o600)
		if _, err := LoadOrCreate(p); err == nil {
			t.Errorf("token %.40q accepted", bad)
		}
	}
	if _, err := LoadOrCreate(filepath.Join(t.TempDir(), "missing-dir", "t")); err == nil {
		t.Error("token file in a missing directory: no error")
	}
	if _, err := LoadOrCreate(t.TempDir()); err == nil {
		t.Error("a directory accepted as token file")
	}
	own := filepath.Join(t.TempDir(), "own")
	os.WriteFile(own, []byte(strings.Repeat("Zz9-._~+/", 5)+"==\n"), 0o600)
	if _, err := LoadOrCreate(own); err != nil {
		t.Errorf("an operator's own token68 token: %v", err)
	}
}

func TestRequire(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultFile)
	tok, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := Load(path)
	served := 0
	srv := httptest.NewServer(Require(tok, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served++
		io.WriteString(w, "ok")
	})))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(addr)

	for _, tt := range []struct {
		name, host, auth, ctype, body string
		want                          int
	}{
		{"operator GET", addr, "Bearer " + secret, "", "", 200},
		{"operator POST", addr, "Bearer " + secret, "application/json; charset=utf-8", "{}", 200},
		{"localhost", "localhost:" + port, "bearer " + secret, "", "", 200},
		{"LOCALHOST", "LOCALHOST:" + port, "Bearer " + secret, "", "", 200},
		{"other loopback address", "127.0.0.2:" + port, "Bearer " + secret, "", "", 200},
		{"::1", "[::1]:" + port, "Bearer " + secret, "", "", 200},
		{"rebound name", "evil.example:" + port, "Bearer " + secret, "", "", 403},
		{"rebound name, no port", "evil.example", "Bearer " + secret, "", "", 403},
		{"name ending in localhost", "localhost.evil.example:" + port, "Bearer " + secret, "", "", 403},
		{"other port", "127.0.0.1:1", "Bearer " + secret, "", "", 403},
		{"no port", "127.0.0.1", "Bearer " + secret, "", "", 403},
		{"public address", "192.0.2.1:" + port, "Bearer " + secret, "", "", 403},
		{"no token", addr, "", "", "", 401},
		{"wrong token", addr, "Bearer " + strings.Repeat("0", 64), "", "", 401},
		{"token prefix", addr, "Bearer " + secret[:63], "", "", 401},
		{"basic scheme", addr, "Basic " + secret, "", "", 401},
		{"text/plain form", addr, "Bearer " + secret, "text/plain", `{"name":"x"}=`, 415},
		{"urlencoded form", addr, "Bearer " + secret, "application/x-www-form-urlencoded", "a=b", 415},
		{"body without a type", addr, "Bearer " + secret, "", "{}", 415},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/x", strings.NewReader(tt.body))
		if tt.body == "" {
			req.Method, req.Body, req.ContentLength = http.MethodGet, nil, 0
		}
		req.Host = tt.host
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		if tt.ctype != "" {
			req.Header.Set("Content-Type", tt.ctype)
		}
		before := served
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, resp.StatusCode, b, tt.want)
		}
		if tt.want != 200 && (served != before || !strings.HasPrefix(string(b), `{"error":`) || resp.Header.Get("Content-Type") != "application/json") {
			t.Errorf("%s: refusal reached the handler or is not a JSON error: %s", tt.name, b)
		}
	}
}

func TestRequireWithoutToken(t *testing.T) {
	srv := httptest.NewServer(Require(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("served without a token configured")
	})))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
	req.Header.Set("Authorization", "Bearer ")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("nil token: %d, want 401", resp.StatusCode)
	}
}

func TestSetHeaders(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPut, "http://127.0.0.1:1/x", strings.NewReader("{}"))
	SetHeaders(req, "tok")
	if req.Header.Get("Authorization") != "Bearer tok" || req.Header.Get("Content-Type") != "application/json" {
		t.Errorf("with a body: %v", req.Header)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://127.0.0.1:1/x", nil)
	SetHeaders(req, "tok")
	if req.Header.Get("Content-Type") != "" {
		t.Errorf("without a body: %v", req.Header)
	}
}
