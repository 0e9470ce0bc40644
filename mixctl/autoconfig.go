package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"
)

// Thunderbird's account wizard asks http://autoconfig.DOMAIN/mail/config-v1.1.xml, on port 80,
// and a .localhost DOMAIN resolves to loopback; each provider of the local network serves its
// document on a port of its own. autoconfigFront listens on one address (127.0.0.1:80 for the
// wizard) and hands each request to the provider of the domain it is for: by the Host header
// (autoconfig.alpha.localhost or alpha.localhost) or by the emailaddress parameter the wizard
// adds. Anything else gets 404.
func autoconfigFront(providers map[string]string) http.Handler {
	proxies := map[string]*httputil.ReverseProxy{}
	for domain, addr := range providers {
		proxies[domain] = httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		domain := ""
		if _, d, ok := strings.Cut(r.URL.Query().Get("emailaddress"), "@"); ok {
			domain = strings.ToLower(d)
		} else {
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil {
				host = r.Host
			}
			domain = strings.TrimPrefix(strings.ToLower(host), "autoconfig.")
		}
		p, ok := proxies[domain]
		if !ok {
			http.Error(w, "no provider of this network serves "+domain, http.StatusNotFound)
			return
		}
		p.ServeHTTP(w, r)
	})
}

// serveAutoconfigFront listens on addr and serves autoconfigFront until ctx ends.
func serveAutoconfigFront(ctx context.Context, addr string, providers map[string]string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("--autoconfig-address %s: %w (port 80 needs root, or once: sudo sysctl net.ipv4.ip_unprivileged_port_start=80)", addr, err)
	}
	srv := &http.Server{Handler: autoconfigFront(providers), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxHeaderBytes: 8 << 10}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "autoconfig front:", err)
		}
	}()
	return ln.Addr().String(), nil
}
