package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/freeport"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/config"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

// mixBench is one mix node under test, on real loopback TCP with TLS links, between a load
// generator and a sink. Both speak to the mix as one node of the consensus (the sink's keys), so
// the path measured is exactly a mix's: read a frame from a TLS link, unwrap, replay-check (with
// the group fsync), schedule (delay 0), forward over another TLS link.
type mixBench struct {
	mix      *Node
	mixKey   *keys.SphinxPrivateKey
	geo      sphinx.Geometry
	route    []sphinx.Hop
	gen      *wire.Conn
	received atomic.Int64
	arrivals sync.Map // [32]byte alpha at the sink -> time.Time
	cancel   context.CancelFunc
	done     chan error
}

func freeAddr(b *testing.B) string {
	a, err := freeport.Addr()
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func newMixBench(b *testing.B, geo sphinx.Geometry) *mixBench {
	b.Helper()
	authKey, _ := keys.GenerateIdentityKey(rand.Reader)
	params := pki.DefaultParameters()
	params.Geometry = geo
	td := &testDirectory{key: authKey, params: params, descs: map[keys.IdentityPublicKey][]*pki.Descriptor{}}
	srv := newHTTPServer(b, td)
	clock, _ := pki.NewClock(params.EpochLength)
	cur, _, _ := clock.Now()

	// The sink: a node of the consensus that counts what the mix forwards to it.
	sinkID, _ := keys.GenerateIdentityKey(rand.Reader)
	sinkLink, _ := keys.GenerateLinkKey(rand.Reader)
	sinkAddr := freeAddr(b)
	var sk []pki.EpochKey
	for e := cur; e <= cur+2; e++ {
		k, _ := keys.GenerateSphinxKey(rand.Reader)
		sk = append(sk, pki.EpochKey{Epoch: e, Key: k.Public()})
	}
	desc := &pki.Descriptor{Epoch: cur, Identity: sinkID.Public(), Link: sinkLink.Public(), Role: pki.RoleMix, Addresses: []string{sinkAddr}, SphinxKeys: sk}
	if err := desc.Sign(sinkID); err != nil {
		b.Fatal(err)
	}
	td.descs[desc.Identity] = []*pki.Descriptor{desc}

	mb := &mixBench{geo: geo, done: make(chan error, 1)}
	sink, err := wire.NewServer(wire.ServerConfig{Geometry: geo, Key: sinkLink, Authorize: func(keys.LinkPublicKey) error { return nil },
		Handle: func(ctx context.Context, c *wire.Conn) {
			for {
				f, err := c.ReadFrame()
				if err != nil {
					return
				}
				if f.Cmd == wire.CmdSendPacket {
					mb.arrivals.Store([32]byte(f.Body[:32]), time.Now())
					mb.received.Add(1)
				}
			}
		}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	mb.cancel = cancel
	sinkLn, err := net.Listen("tcp", sinkAddr)
	if err != nil {
		b.Fatal(err)
	}
	go sink.Serve(ctx, sinkLn)

	c := config.Default()
	c.DataDir = filepath.Join(b.TempDir(), "mix")
	c.ListenAddress = freeAddr(b)
	c.Sphinx = config.Sphinx{Hops: geo.Hops, PayloadSize: geo.PayloadSize}
	c.Directory = config.Directory{URLs: []string{srv}, Authorities: []string{authKey.Public().String()}, Threshold: 1, EpochLength: params.EpochLength}
	c.MaxPacketRate = 20000
	if err := c.Validate(); err != nil {
		b.Fatal(err)
	}
	mix, err := New(&c, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	mb.mix = mix
	go func() { mb.done <- mix.Run(ctx) }()

	var doc *pki.Document
	for deadline := time.Now().Add(20 * time.Second); ; {
		pc2, _ := pki.NewClient(pki.ClientConfig{URLs: []string{srv}, Authorities: []keys.IdentityPublicKey{authKey.Public()}, Threshold: 1, EpochLength: params.EpochLength})
		if d, err := pc2.Current(ctx); err == nil && len(d.Nodes) == 2 {
			doc = d
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("no document with the mix and the sink")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The mix follows the consensus by polling; wait until it knows the sink.
	for deadline := time.Now().Add(20 * time.Second); !mix.follow.view().links[sinkLink.Public()]; {
		if time.Now().After(deadline) {
			b.Fatal("mix does not see the sink")
		}
		time.Sleep(50 * time.Millisecond)
	}
	mixNode, _ := doc.Node(mix.Identity())
	sinkNode, _ := doc.Node(sinkID.Public())
	mb.route = []sphinx.Hop{hop(b, mixNode, doc.Epoch), hop(b, sinkNode, doc.Epoch)}
	mb.route[0].DelayMS, mb.route[1].DelayMS = 0, 0
	if mb.mixKey, err = keys.LoadSphinxKey(mix.ekeys.keyPath(doc.Epoch)); err != nil {
		b.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	if mb.gen, err = wire.Dial(dctx, wire.DialConfig{Geometry: geo, Key: sinkLink, Remote: mixNode.Link, Addr: mixNode.Addresses[0]}); err != nil {
		b.Fatal(err)
	}
	return mb
}

func (mb *mixBench) close(b *testing.B) {
	mb.gen.Close()
	mb.cancel()
	if err := <-mb.done; err != nil {
		b.Error(err)
	}
}

// packets prepares n packets for the route mix -> sink, and for each the alpha the sink will
// see (computed with the mix's key, outside the mix, so the mix's replay filter is untouched).
func (mb *mixBench) packets(b *testing.B, n int) ([][]byte, map[[32]byte]int) {
	s, _ := sphinx.New(mb.geo)
	out := make([][]byte, n)
	alphas := make(map[[32]byte]int, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 2 {
				pkt, err := s.NewPacket(rand.Reader, mb.route, sphinx.Recipient{Service: "loop", ID: "bench"}, nil)
				if err != nil {
					panic(err)
				}
				cp := append([]byte(nil), pkt...)
				u, err := s.Unwrap(mb.mixKey, cp)
				if err != nil {
					panic(err)
				}
				out[i] = pkt
				mu.Lock()
				alphas[[32]byte(u.Packet[:32])] = i
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out, alphas
}

func (mb *mixBench) waitReceived(b *testing.B, n int64, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for mb.received.Load() < n {
		if time.Now().After(deadline) {
			mfs, _ := mb.mix.Registry().Gather()
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					if c := m.GetCounter(); c != nil && c.GetValue() > 0 {
						b.Logf("%s %v %v", mf.GetName(), m.GetLabel(), c.GetValue())
					}
				}
			}
			b.Fatalf("sink received %d of %d packets", mb.received.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkMixThroughput: packets per second through one mix node, link encryption and unwrap
// included, the generator's packets prepared in advance (make bench; docs/BENCHMARKS.md).
func BenchmarkMixThroughput(b *testing.B) {
	for _, geo := range []sphinx.Geometry{sphinx.DefaultGeometry(), {Hops: 5, PayloadSize: 2048}} {
		b.Run(fmt.Sprintf("payload=%d", geo.PayloadSize), func(b *testing.B) {
			mb := newMixBench(b, geo)
			defer mb.close(b)
			const n = 20000
			pkts, _ := mb.packets(b, n)
			b.ResetTimer()
			start := time.Now()
			sent := 0
			for i := 0; i < b.N; i++ {
				if err := mb.gen.WriteFrame(&wire.Frame{Cmd: wire.CmdSendPacket, Body: pkts[i%n]}); err != nil {
					b.Fatal(err)
				}
				sent++
				if i%n == n-1 {
					break // every prepared packet used once: a replay would be dropped
				}
			}
			mb.waitReceived(b, int64(sent), 30*time.Second)
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(sent)/el.Seconds(), "packets/s")
			b.ReportMetric(float64(el.Microseconds())/float64(sent), "µs/packet")
		})
	}
}

// BenchmarkMixLatency: the latency the node adds (packets carry no delay), at a fixed offered
// load, p50 and p99 over all packets. MIX_BENCH_RATE sets the load (default 2500/s, half the
// 5,000/s target).
func BenchmarkMixLatency(b *testing.B) {
	geo := sphinx.DefaultGeometry()
	mb := newMixBench(b, geo)
	defer mb.close(b)
	rate := 2500
	n := 10000
	pkts, alphas := mb.packets(b, n)
	sentAt := make([]time.Time, n)
	b.ResetTimer()
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range n {
		next := start.Add(time.Duration(i) * interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		sentAt[i] = time.Now()
		if err := mb.gen.WriteFrame(&wire.Frame{Cmd: wire.CmdSendPacket, Body: pkts[i]}); err != nil {
			b.Fatal(err)
		}
	}
	mb.waitReceived(b, int64(n), time.Minute)
	b.StopTimer()
	var lat []time.Duration
	mb.arrivals.Range(func(k, v any) bool {
		if i, ok := alphas[k.([32]byte)]; ok {
			lat = append(lat, v.(time.Time).Sub(sentAt[i]))
		}
		return true
	})
	if len(lat) != n {
		b.Fatalf("matched %d of %d arrivals", len(lat), n)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(rate), "offered-packets/s")
}
