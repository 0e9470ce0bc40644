package agent

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every refusal of a hostile or careless local client, before anything reaches the engine, and
// one that the engine makes: each answer is JSON with a code, and nothing is stored.
func TestRefusals(t *testing.T) {
	e, pc := deadEngine(t)
	s := startAgent(t, pc, Config{MaxPayload: 100}, Account{Address: "alice@alpha.localhost", Engine: e})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(s.url, "http://"))
	good := []byte(`{"domain":"beta.localhost","service":"mailbox","recipient":"bob","data":"aGk="}`)

	for _, tt := range []struct {
		name         string
		method, path string
		body         []byte
		token        string
		edit         func(*http.Request)
		want         int
		code         string // "" for adminauth's refusals, which carry none
	}{
		{"no token", "GET", "/agent/v1/status", nil, "", nil, 401, ""},
		{"wrong token", "GET", "/agent/v1/status", nil, strings.Repeat("0", 64), nil, 401, ""},
		{"rebound host name", "GET", "/agent/v1/status", nil, s.token, func(r *http.Request) { r.Host = "evil.example:" + port }, 403, ""},
		{"other port", "GET", "/agent/v1/status", nil, s.token, func(r *http.Request) { r.Host = "127.0.0.1:1" }, 403, ""},
		{"form body", "POST", "/agent/v1/send", []byte("domain=beta.localhost"), s.token, func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }, 415, ""},
		{"text body", "POST", "/agent/v1/send", good, s.token, func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, 415, ""},
		{"malformed JSON", "POST", "/agent/v1/send", []byte(`{"domain":`), s.token, nil, 400, codeBadRequest},
		{"not an object", "POST", "/agent/v1/send", []byte(`[1,2]`), s.token, nil, 400, codeBadRequest},
		{"two objects", "POST", "/agent/v1/send", append(bytes.Clone(good), good...), s.token, nil, 400, codeBadRequest},
		{"unknown field", "POST", "/agent/v1/send", []byte(`{"domain":"beta.localhost","service":"mailbox","recipient":"bob","data":"","surb":"x"}`), s.token, nil, 400, codeBadRequest},
		{"data not base64", "POST", "/agent/v1/send", []byte(`{"domain":"beta.localhost","service":"mailbox","recipient":"bob","data":"!!"}`), s.token, nil, 400, codeBadRequest},
		{"no recipient", "POST", "/agent/v1/send", []byte(`{"domain":"beta.localhost","service":"mailbox","data":""}`), s.token, nil, 400, codeBadRequest},
		{"bad service name", "POST", "/agent/v1/send", []byte(`{"domain":"beta.localhost","service":"Mail Box","recipient":"bob","data":""}`), s.token, nil, 400, codeBadRequest},
		{"recipient over 64 bytes", "POST", "/agent/v1/send", fmt.Appendf(nil, `{"domain":"beta.localhost","service":"mailbox","recipient":"%s","data":""}`, strings.Repeat("b", 65)), s.token, nil, 400, codeBadRequest},
		{"uppercase domain", "POST", "/agent/v1/send", []byte(`{"domain":"Beta.localhost","service":"mailbox","recipient":"bob","data":""}`), s.token, nil, 400, codeBadRequest},
		{"reply to queue", "POST", "/agent/v1/send", []byte(`{"domain":"beta.localhost","service":"queue","recipient":"bob","data":"","reply":true}`), s.token, nil, 400, codeBadRequest},
		{"idempotency key too long", "POST", "/agent/v1/send", fmt.Appendf(nil, `{"domain":"beta.localhost","service":"mailbox","recipient":"bob","data":"","idempotency_key":"%s"}`, strings.Repeat("k", MaxIdempotencyKey+1)), s.token, nil, 400, codeBadRequest},
		// 101 bytes of data: a body within the body limit, data over MaxPayload.
		{"data over max payload", "POST", "/agent/v1/send", fmt.Appendf(nil, `{"domain":"beta.localhost","service":"mailbox","recipient":"bob","data":"%s"}`, strings.Repeat("QUFB", 34)[:136]), s.token, nil, 413, codeTooLarge},
		{"body over the limit", "POST", "/agent/v1/send", fmt.Appendf(nil, `{"domain":"beta.localhost","service":"mailbox","recipient":"bob","data":"%s"}`, strings.Repeat("QUFB", 4<<10)), s.token, nil, 413, codeTooLarge},
		{"no consensus", "POST", "/agent/v1/send", good, s.token, nil, 503, codeNoConsensus},
		{"services without consensus", "GET", "/agent/v1/services", nil, s.token, nil, 503, codeNoConsensus},
		{"unknown account", "GET", "/agent/v1/status?account=mallory@alpha.localhost", nil, s.token, nil, 404, codeNotFound},
		{"bad message id", "GET", "/agent/v1/status/xyz", nil, s.token, nil, 400, codeBadRequest},
		{"uppercase message id", "GET", "/agent/v1/status/" + strings.Repeat("A", 32), nil, s.token, nil, 400, codeBadRequest},
		{"unknown message", "GET", "/agent/v1/status/" + strings.Repeat("a", 32), nil, s.token, nil, 404, codeNotFound},
		{"forget unknown message", "DELETE", "/agent/v1/status/" + strings.Repeat("a", 32), nil, s.token, nil, 404, codeNotFound},
		{"wait too long", "GET", "/agent/v1/received?wait=1h", nil, s.token, nil, 400, codeBadRequest},
		{"negative wait", "GET", "/agent/v1/received?wait=-1s", nil, s.token, nil, 400, codeBadRequest},
		{"wait not a duration", "GET", "/agent/v1/status/" + strings.Repeat("a", 32) + "?wait=soon", nil, s.token, nil, 400, codeBadRequest},
		{"after not a time", "GET", "/agent/v1/status/" + strings.Repeat("a", 32) + "?after=yesterday", nil, s.token, nil, 400, codeBadRequest},
		{"bad seq", "POST", "/agent/v1/received/-1/ack", nil, s.token, nil, 400, codeBadRequest},
		{"seq with leading zero", "POST", "/agent/v1/received/01/ack", nil, s.token, nil, 400, codeBadRequest},
		{"seq over 64 bits", "POST", "/agent/v1/received/18446744073709551616/ack", nil, s.token, nil, 400, codeBadRequest},
		{"ack of nothing", "POST", "/agent/v1/received/7/ack", nil, s.token, nil, 404, codeNotFound},
		{"unknown endpoint", "GET", "/agent/v1/keys", nil, s.token, nil, 404, codeNotFound},
		{"wrong method", "PUT", "/agent/v1/send", good, s.token, nil, 404, codeNotFound},
		{"other version", "GET", "/agent/v2/services", nil, s.token, nil, 404, codeNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := s.do(tt.method, tt.path, tt.body, tt.token, tt.edit)
			if err != nil {
				t.Fatal(err)
			}
			if r.code != tt.want || r.hdr.Get("Content-Type") != "application/json" || !contains(r.body, `"error":`) {
				t.Fatalf("%d %s %q, want %d with a JSON error", r.code, r.hdr.Get("Content-Type"), r.body, tt.want)
			}
			if got := r.errorCode(); got != tt.code {
				t.Fatalf("code %q (%s), want %q", got, r.body, tt.code)
			}
		})
	}
	// Nothing reached the store.
	if l, err := e.List(); err != nil || len(l) != 0 {
		t.Fatalf("engine holds %d messages (%v) after refusals", len(l), err)
	}
	// A header section over maxHeaderBytes is refused by net/http before any handler (which
	// closes the connection, so reading the answer's body may fail).
	r, err := s.do("GET", "/agent/v1/status", nil, s.token, func(r *http.Request) { r.Header.Set("X-Pad", strings.Repeat("p", 2*maxHeaderBytes)) })
	if r.code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("oversize header: %d %v", r.code, err)
	}
	// A request without a port in Host is refused too (adminauth counts it as port 80).
	r, err = s.do("GET", "/agent/v1/status", nil, s.token, func(r *http.Request) { r.Host = "127.0.0.1" })
	if err != nil || r.code != 403 {
		t.Fatalf("Host without port: %d %v", r.code, err)
	}
}

// A flood beyond the in-flight bound gets quick 503s with Retry-After, not a queue; long-polls
// have their own, smaller bound so that they cannot take every slot; when the flood ends the
// agent serves again.
func TestFloodBounded(t *testing.T) {
	e, pc := deadEngine(t)
	const inFlight, waiters = 6, 3
	s := startAgent(t, pc, Config{MaxInFlight: inFlight, MaxWaiters: waiters, ReceivePollInterval: 20 * time.Millisecond},
		Account{Address: "alice@alpha.localhost", Engine: e})

	// Long-polls on an empty inbox hold the waiter slots.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	holding := make(chan struct{}, waiters)
	for range waiters {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/agent/v1/received?wait=60s", nil)
			req.Header.Set("Authorization", "Bearer "+s.token)
			holding <- struct{}{}
			if resp, err := httpClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	for range waiters {
		<-holding
	}
	waitUntil(t, "the long-polls to hold their slots", func() bool { return len(s.waiters) == waiters })

	// A further long-poll is refused at once; a request that does not wait is served.
	r := s.call(t, "GET", "/agent/v1/received?wait=60s", nil)
	if r.code != 503 || r.errorCode() != codeBusy || r.hdr.Get("Retry-After") == "" {
		t.Fatalf("long-poll over the waiter bound: %d %s", r.code, r.body)
	}
	if r := s.call(t, "GET", "/agent/v1/received", nil); r.code != 200 {
		t.Fatalf("plain request beside the long-polls: %d %s", r.code, r.body)
	}

	// A flood of plain requests: each is served or refused with 503 busy, none waits for
	// another's slot beyond its own service, and the in-flight count never passes the bound.
	var mu sync.Mutex
	counts := map[int]int{}
	var flood sync.WaitGroup
	for i := range 400 {
		flood.Go(func() {
			var r reply
			var err error
			if i%4 == 0 {
				r, err = s.do("GET", "/agent/v1/received", nil, strings.Repeat("0", 64), nil) // bad token
			} else {
				r, err = s.do("POST", "/agent/v1/send", []byte(`{"domain":`), s.token, nil) // malformed
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				counts[-1]++
				return
			}
			counts[r.code]++
			if r.code == 503 && r.errorCode() != codeBusy {
				t.Errorf("503 without code busy: %s", r.body)
			}
		})
	}
	flood.Wait()
	t.Logf("flood answers by status: %v", counts)
	if counts[-1] != 0 || counts[401] != 100 || counts[400]+counts[503] != 300 {
		t.Fatalf("flood answers %v: want 100 401s and 300 400s or 503s, no transport errors", counts)
	}

	// Plain requests finish too fast to fill the in-flight bound for certain: the test takes
	// the slots the long-polls left itself, so that the refusal is certain.
	for range inFlight - waiters {
		s.inFlight <- struct{}{}
	}
	if r := s.call(t, "GET", "/agent/v1/received", nil); r.code != 503 || r.errorCode() != codeBusy || r.hdr.Get("Retry-After") != "1" {
		t.Fatalf("request over the in-flight bound: %d %s", r.code, r.body)
	}
	for range inFlight - waiters {
		<-s.inFlight
	}
	cancel()
	wg.Wait()
	waitUntil(t, "the long-polls' slots to be free", func() bool { return len(s.waiters) == 0 && len(s.inFlight) == 0 })
	if r := s.call(t, "GET", "/agent/v1/received?wait=10ms", nil); r.code != 200 {
		t.Fatalf("after the flood: %d %s", r.code, r.body)
	}
}

// Connections beyond MaxConns wait for a free slot instead of costing goroutines and buffers.
func TestConnectionBound(t *testing.T) {
	e, pc := deadEngine(t)
	s := startAgent(t, pc, Config{MaxConns: 2}, Account{Address: "alice@alpha.localhost", Engine: e})
	addr := strings.TrimPrefix(s.url, "http://")
	var idle []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// Both slots are held by silent connections: a request on a third connection is not
	// served until one of them closes.
	got := make(chan reply, 1)
	go func() {
		r, err := s.do("GET", "/agent/v1/status", nil, s.token, nil)
		if err != nil {
			r.code = -1
		}
		got <- r
	}()
	select {
	case r := <-got:
		t.Fatalf("served over the connection bound: %d %s", r.code, r.body)
	case <-time.After(300 * time.Millisecond):
	}
	idle[0].Close()
	if r := <-got; r.code != 200 {
		t.Fatalf("after a slot freed: %d %s", r.code, r.body)
	}
	idle[1].Close()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
