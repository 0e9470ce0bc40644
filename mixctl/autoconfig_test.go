package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The front hands each request to the provider of its domain, by Host or by emailaddress, and
// refuses other domains.
func TestAutoconfigFront(t *testing.T) {
	backend := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name+" "+r.URL.Path)
		}))
	}
	a, b := backend("alpha"), backend("beta")
	defer a.Close()
	defer b.Close()
	front := httptest.NewServer(autoconfigFront(map[string]string{"alpha.localhost": a.Listener.Addr().String(), "beta.localhost": b.Listener.Addr().String()}))
	defer front.Close()
	for _, c := range []struct{ host, query, want string }{
		{"autoconfig.alpha.localhost", "", "alpha /mail/config-v1.1.xml"},
		{"autoconfig.beta.localhost:80", "", "beta /mail/config-v1.1.xml"},
		{"127.0.0.1", "?emailaddress=bob%40Beta.localhost", "beta /mail/config-v1.1.xml"},
		{"autoconfig.gamma.localhost", "", "404"},
		{"autoconfig.alpha.localhost", "?emailaddress=eve%40gamma.localhost", "404"},
	} {
		req, _ := http.NewRequest(http.MethodGet, front.URL+"/mail/config-v1.1.xml"+c.query, nil)
		req.Host = c.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := string(body)
		if resp.StatusCode == http.StatusNotFound {
			got = "404"
		}
		if got != c.want {
			t.Errorf("Host %s%s: %q, want %q", c.host, c.query, got, c.want)
		}
	}
}
