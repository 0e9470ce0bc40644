package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime/pprof"
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
	cancel   context.CancelFunc
	done     chan error
}

func freeAddr(b testing.TB) string {
	a, err := freeport.Addr()
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// newMixBench starts the mix, the sink and the generator's link. The sink counts the packets
// and hands each to sunk when it is not nil (MixLatency records arrival times, a test checks the
// bytes), so that the throughput benchmark's sink spends nothing the node's next hop would not.
// sunk's argument is valid only during the call.
func newMixBench(b testing.TB, geo sphinx.Geometry, sunk func(pkt []byte)) *mixBench {
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
			buf := make([]byte, wire.FrameSize(geo))
			for {
				f, err := c.ReadFrameInto(buf)
				if err != nil {
					return
				}
				if f.Cmd == wire.CmdSendPacket {
					if sunk != nil {
						sunk(f.Body)
					}
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
	// Profiler labels (part=node, sink, gen, prep) separate the node's own CPU time from the
	// load generator's and the sink's in a -cpuprofile of this benchmark (go tool pprof
	// -tagfocus part=node): all of them share the process and its cores.
	pprof.Do(ctx, pprof.Labels("part", "sink"), func(ctx context.Context) { go sink.Serve(ctx, sinkLn) })

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
	pprof.Do(ctx, pprof.Labels("part", "node"), func(ctx context.Context) {
		go func() { mb.done <- mix.Run(ctx) }()
	})

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

func (mb *mixBench) close(b testing.TB) {
	mb.gen.Close()
	mb.cancel()
	if err := <-mb.done; err != nil {
		b.Error(err)
	}
}

// packets prepares n packets for the route mix -> sink, and for each the alpha the sink will
// see and the SHA-256 of the whole packet it will see (computed with the mix's key, outside the
// mix, so the mix's replay filter is untouched).
func (mb *mixBench) packets(n int) ([][]byte, map[[32]byte]int, [][32]byte) {
	s, _ := sphinx.New(mb.geo)
	out := make([][]byte, n)
	alphas := make(map[[32]byte]int, n)
	sums := make([][32]byte, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := range 2 {
		wg.Add(1)
		pprof.Do(context.Background(), pprof.Labels("part", "prep"), func(context.Context) {
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
					sums[i] = sha256.Sum256(u.Packet)
					mu.Lock()
					alphas[[32]byte(u.Packet[:32])] = i
					mu.Unlock()
				}
			}()
		})
	}
	wg.Wait()
	return out, alphas, sums
}

func (mb *mixBench) waitReceived(b testing.TB, n int64, timeout time.Duration) {
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
			mb := newMixBench(b, geo, nil)
			defer mb.close(b)
			const n = 20000
			pkts, _, _ := mb.packets(n)
			b.ResetTimer()
			start := time.Now()
			sent := 0
			pprof.Do(context.Background(), pprof.Labels("part", "gen"), func(context.Context) {
				for i := 0; i < b.N; i++ {
					if err := mb.gen.WriteFrame(&wire.Frame{Cmd: wire.CmdSendPacket, Body: pkts[i%n]}); err != nil {
						b.Fatal(err)
					}
					sent++
					if i%n == n-1 {
						break // every prepared packet used once: a replay would be dropped
					}
				}
			})
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
	var arrivals sync.Map // [32]byte alpha at the sink -> time.Time
	mb := newMixBench(b, geo, func(pkt []byte) { arrivals.Store([32]byte(pkt[:32]), time.Now()) })
	defer mb.close(b)
	rate := 2500
	n := 10000
	pkts, alphas, _ := mb.packets(n)
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
	arrivals.Range(func(k, v any) bool {
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

// TestForwardedPacketsIntact: packets sent to a mix as fast as one link carries them leave it
// byte for byte as Unwrap makes them, each once, replays dropped. The mix reads each packet
// into a pooled buffer and forwards it from there; a buffer put back too early would be
// overwritten by a later packet while still queued.
func TestForwardedPacketsIntact(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a mix node on loopback")
	}
	var mu sync.Mutex
	seen := map[[32]byte]int{}
	mb := newMixBench(t, sphinx.Geometry{Hops: 5, PayloadSize: 2048}, func(pkt []byte) {
		mu.Lock()
		seen[sha256.Sum256(pkt)]++
		mu.Unlock()
	})
	defer mb.close(t)
	const n = 3000
	pkts, _, sums := mb.packets(n)
	for i, p := range pkts {
		if err := mb.gen.WriteFrame(&wire.Frame{Cmd: wire.CmdSendPacket, Body: p}); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 { // a replay, which the mix must drop
			if err := mb.gen.WriteFrame(&wire.Frame{Cmd: wire.CmdSendPacket, Body: pkts[i/2]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	mb.waitReceived(t, n, time.Minute)
	mu.Lock()
	defer mu.Unlock()
	for i, sum := range sums {
		if seen[sum] != 1 {
			t.Fatalf("packet %d arrived %d times intact", i, seen[sum])
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct packets arrived, want %d", len(seen), n)
	}
}
