package agent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
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

// A request and its reply through the mixnet, by both paths in the same run, alternated: a GET
// of a stored key in contrib/plugins/kvdrop.py on beta's provider, from a running engine of
// alice's (lambda_P 10/s, mean hop delay 20 ms, cap 200 ms). direct: Engine.SendOnce, then
// Engine.Status every PollInterval until the message is finished; agent: POST send, then GET
// status with wait and after until finished. One op is one request by each path; the metrics
// are each path's median and mean latency from the send to the answer in hand, and their
// difference, the agent's added latency (the mixnet's random delays dominate both).
func BenchmarkRequestReply(b *testing.B) {
	repo, err := testnet.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		b.Skip("/usr/bin/python3 missing: apt-get install python3")
	}
	n, pc := realNet(b, fmt.Sprintf("[[plugin]]\nname = \"kvdrop\"\ncommand = [\"/usr/bin/python3\", %q]\n", filepath.Join(repo, "contrib/plugins/kvdrop.py")))
	e := startEngine(b, n, n.Node("provider-alpha"), "alice", pc)
	s := startAgent(b, pc, Config{}, Account{Address: "alice@alpha.localhost", Engine: e})
	dst := client.Destination{Domain: "beta.localhost", Service: "kvdrop", Recipient: "bench"}
	ctx := context.Background()
	// The plugin's service must be in the consensus before the first request.
	for {
		doc, err := pc.Current(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if p, ok := doc.Provider(dst.Domain); ok && slices.Contains(p.Services, dst.Service) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	direct := func() (time.Duration, error) {
		start := time.Now()
		id, err := e.Send(ctx, dst, []byte("GET k"))
		if err != nil {
			return 0, err
		}
		for {
			st, err := e.Status(id)
			if err != nil {
				return 0, err
			}
			if st.State.Finished() {
				if string(st.Answer) != "v" {
					return 0, fmt.Errorf("direct: %+v", st)
				}
				return time.Since(start), nil
			}
			time.Sleep(DefaultPollInterval)
		}
	}
	viaAgent := func() (time.Duration, error) {
		start := time.Now()
		r, err := s.do(http.MethodPost, "/agent/v1/send", sendBody(dst.Domain, dst.Service, dst.Recipient, []byte("GET k")), s.token, nil)
		if err != nil || r.code != http.StatusCreated {
			return 0, fmt.Errorf("send: %d %s %v", r.code, r.body, err)
		}
		var sent sendResponse
		if err := json.Unmarshal(r.body, &sent); err != nil {
			return 0, err
		}
		st := sent.Status
		for !st.Finished {
			r, err := s.do(http.MethodGet, "/agent/v1/status/"+sent.ID+"?wait=30s&after="+url.QueryEscape(st.Updated.Format(time.RFC3339Nano)), nil, s.token, nil)
			if err != nil || r.code != http.StatusOK {
				return 0, fmt.Errorf("status: %d %s %v", r.code, r.body, err)
			}
			if err := json.Unmarshal(r.body, &st); err != nil {
				return 0, err
			}
		}
		if string(st.Answer) != "v" {
			return 0, fmt.Errorf("agent: %+v", st)
		}
		return time.Since(start), nil
	}
	if id, err := e.Send(ctx, dst, []byte("PUT k\nv")); err != nil {
		b.Fatal(err)
	} else {
		for st, _ := e.Status(id); !st.State.Finished(); st, _ = e.Status(id) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	var ds, as []time.Duration
	i := 0
	for b.Loop() {
		// Alternate which path goes first, so that neither always meets the other's traffic.
		order := []func() (time.Duration, error){direct, viaAgent}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for k, f := range order {
			d, err := f()
			if err != nil {
				b.Fatal(err)
			}
			if (k == 0) == (i%2 == 0) {
				ds = append(ds, d)
			} else {
				as = append(as, d)
			}
		}
		i++
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(median(ds)), "direct-p50-ms")
	b.ReportMetric(ms(median(as)), "agent-p50-ms")
	b.ReportMetric(ms(mean(ds)), "direct-mean-ms")
	b.ReportMetric(ms(mean(as)), "agent-mean-ms")
	b.ReportMetric(ms(mean(as)-mean(ds)), "added-mean-ms")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func mean(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t / time.Duration(len(ds))
}
