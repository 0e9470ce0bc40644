package agent

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
)

// The agent path against the built-in one, in the same run, on one engine whose consensus
// comes from the real binaries (the engine does not run: the queue only grows, and what is
// measured is the call, not the mixnet):
//
//   - send: a 100-byte payload queued for beta's kvdrop-like service (one fragment, one
//     committed and fsync'd transaction), by Engine.SendOnce directly, or by POST
//     /agent/v1/send over a kept-alive loopback connection (JSON, base64, token check, the
//     engine call, the status read back);
//   - status: one message's status, by Engine.Status or GET /agent/v1/status/{id} (no fsync:
//     the HTTP and JSON overhead alone).
//
// seq runs one call at a time (ns/op is its latency); par runs GOMAXPROCS*4 callers (req/s).
func BenchmarkAgent(b *testing.B) {
	n, pc := realNet(b, "")
	alpha := n.Node("provider-alpha")
	key, err := n.AddUser(alpha, "alice", 1<<24)
	if err != nil {
		b.Fatal(err)
	}
	defer key.Wipe()
	e, err := client.New(client.Config{DataDir: b.TempDir(), User: "alice", Domain: alpha.Domain, LinkKey: key, PKI: pc,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	s := startAgent(b, pc, Config{MaxInFlight: 256}, Account{Address: "alice@alpha.localhost", Engine: e})
	payload := make([]byte, 100)
	rand.Read(payload)
	dst := client.Destination{Domain: "beta.localhost", Service: "mailbox", Recipient: "bob"}
	body := sendBody(dst.Domain, dst.Service, dst.Recipient, payload)
	id, err := e.Send(context.Background(), dst, payload)
	if err != nil {
		b.Fatal(err)
	}
	var unique atomic.Int64
	send := map[string]func() error{
		"direct": func() error {
			_, _, err := e.SendOnce(context.Background(), dst, payload, fmt.Appendf(nil, "bench-%d", unique.Add(1)))
			return err
		},
		"agent": func() error {
			return expect(s.do(http.MethodPost, "/agent/v1/send", withKey(body, fmt.Sprintf("bench-%d", unique.Add(1))), s.token, nil))(http.StatusCreated)
		},
	}
	status := map[string]func() error{
		"direct": func() error {
			_, err := e.Status(id)
			return err
		},
		"agent": func() error {
			return expect(s.do(http.MethodGet, "/agent/v1/status/"+id.String(), nil, s.token, nil))(http.StatusOK)
		},
	}
	for _, op := range []struct {
		name string
		fns  map[string]func() error
	}{{"send", send}, {"status", status}} {
		for _, path := range []string{"direct", "agent"} {
			fn := op.fns[path]
			b.Run(op.name+"/"+path+"/seq", func(b *testing.B) {
				for b.Loop() {
					if err := fn(); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(op.name+"/"+path+"/par", func(b *testing.B) {
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := fn(); err != nil {
							b.Error(err) // not Fatal: this is not the benchmark's goroutine
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
		}
	}
}

// withKey is a send body with its own idempotency key (a fresh message each time).
func withKey(body map[string]any, key string) map[string]any {
	c := make(map[string]any, len(body)+1)
	for k, v := range body {
		c[k] = v
	}
	c["idempotency_key"] = key
	return c
}

// expect turns an agent answer into an error unless it has status want.
func expect(r reply, err error) func(want int) error {
	return func(want int) error {
		if err == nil && r.code != want {
			err = fmt.Errorf("%d %s, want %d", r.code, r.body, want)
		}
		return err
	}
}
