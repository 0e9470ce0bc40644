package plugin

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// BenchmarkDeliver compares, in one run, a request and its ACK through the built-in loop service
// (in process, the same echo work) with the same through a plugin process: the Go echo plugin
// (the test binary, so the figure is the plugin path's own cost) and kvdrop.py's PUT (Python,
// an SQLite commit with synchronous = FULL per request). "seq" waits for each ACK before the
// next request (ns/op is the latency); "par" keeps 16 requests in flight (req/s is the
// throughput). Command: make bench BENCH=BenchmarkDeliver PKG=./mixd/internal/plugin
func BenchmarkDeliver(b *testing.B) {
	type target struct {
		name string
		svc  func(b *testing.B) service.Service
		data func(i int) string
	}
	echo := func(i int) string { return fmt.Sprintf("request %d", i) }
	targets := []target{
		{"loop", func(*testing.B) service.Service { return loopFragments{} }, echo},
		{"echo-plugin", func(b *testing.B) service.Service {
			s := startSelf(b, prometheus.NewRegistry(), "echo", "echo", 30*time.Second)
			s.waitUp(b)
			return s.Plugin
		}, echo},
		{"kvdrop-put", func(b *testing.B) service.Service {
			s := start(b, prometheus.NewRegistry(), "kvdrop", []string{python3(b), "-B", kvdrop(b)}, nil, 30*time.Second)
			s.waitUp(b)
			return s.Plugin
		}, func(i int) string { return fmt.Sprintf("PUT key%d\nvalue %d", i%1000, i) }},
	}
	for _, tg := range targets {
		b.Run(tg.name+"/seq", func(b *testing.B) {
			svc := tg.svc(b)
			r := newReplies()
			b.ResetTimer()
			for i := range b.N {
				roundTrip(b, svc, r, tg.data(i))
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
		b.Run(tg.name+"/par", func(b *testing.B) {
			svc := tg.svc(b)
			b.SetParallelism(8) // 16 goroutines on 2 cores: within every max_in_flight here
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				r := newReplies()
				i := 0
				for pb.Next() {
					roundTrip(b, svc, r, tg.data(i))
					i++
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// roundTrip delivers data as a new one-fragment message and waits for its ACK.
func roundTrip(b *testing.B, svc service.Service, r *replies, data string) {
	id := newID()
	if err := svc.Deliver(context.Background(), &service.Request{Recipient: "bench", Data: fragment(b, id, data)}, r); err != nil {
		b.Error(err)
		return
	}
	select {
	case <-r.ch:
	case <-time.After(30 * time.Second):
		b.Error("no ACK within 30 s")
	}
}

// loopFragments is the built-in path doing the plugins' work in process: it parses the
// fragment as a plugin's Deliver does and echoes its data in an ACK, as the loop service
// echoes a payload.
type loopFragments struct{}

func (loopFragments) Name() string { return "loop" }

func (loopFragments) Deliver(ctx context.Context, req *service.Request, reply service.Replier) error {
	f, err := client.ParseFragment(req.Data, client.FragmentCapacity(sphinx.DefaultGeometry()))
	if err != nil {
		return err
	}
	a := client.Ack{ID: f.ID, Index: f.Index, Status: client.AckStored, Answer: f.Data}
	return service.Loop{}.Deliver(ctx, &service.Request{Recipient: req.Recipient, Data: a.Marshal()}, reply)
}
