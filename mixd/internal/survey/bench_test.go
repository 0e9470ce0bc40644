package survey

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/dp"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	format "github.com/panoramix-mixnet/panoramix/pkg/survey"
	"github.com/panoramix-mixnet/panoramix/pkg/survey/store"
)

// BenchmarkProviderCost is the exit provider's own cost of one submission (issue 17): the
// last hop's Sphinx unwrap of the packet, the envelope and fragment decoded, the submission
// parsed and validated against its survey, stored durably in SQLite through the service's group
// commit (WAL, synchronous FULL, on this machine's disk), and the ACK's reply packet made from
// the SURB. As many workers as mixd has delivery workers unwrap and deliver, and the service's
// writer commits and answers. The packets are built and carried through their first four hops before the clock
// starts; the replay filter, the links and the forwarding of the reply are not included.
//
// cpu-ns/op is the process's CPU time (user and system, every thread) per submission, and
// submissions/s/core its inverse: what one core of this machine handles, whatever the other
// jobs on it do to the wall time. Run it with a fixed count: -benchtime 2000x.
func BenchmarkProviderCost(b *testing.B) {
	g := sphinx.DefaultGeometry()
	sph, err := sphinx.New(g)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, store.SQLite, filepath.Join(b.TempDir(), "survey.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc, err := New(Config{Store: st, Geometry: g})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	sv := benchSurvey(b)
	if err := st.OpenSurvey(ctx, sv); err != nil {
		b.Fatal(err)
	}
	route := func(n int) ([]*keys.SphinxPrivateKey, []sphinx.Hop) {
		ks := make([]*keys.SphinxPrivateKey, n)
		hops := make([]sphinx.Hop, n)
		for i := range ks {
			k, err := keys.GenerateSphinxKey(rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			ks[i], hops[i] = k, sphinx.Hop{PublicKey: k.Public(), DelayMS: 10}
			rand.Read(hops[i].ID[:])
		}
		return ks, hops
	}
	fwdKeys, fwd := route(5)
	_, back := route(4)
	exit := fwdKeys[len(fwdKeys)-1]

	pkts := prepare(b, sph, sv, fwdKeys, fwd, back)
	var answered atomic.Int64
	all := make(chan struct{})
	rp := func() service.Replier {
		return &benchReplier{sph: sph, g: g, sent: func() {
			if answered.Add(1) == int64(len(pkts)) {
				close(all)
			}
		}}
	}
	work := make(chan []byte, len(pkts))
	for _, p := range pkts {
		work <- p
	}
	close(work)
	runtime.GC()
	b.ResetTimer()
	c0 := cpu(b)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	// As many workers as mixd's delivery workers (2 GOMAXPROCS), each unwrapping and
	// delivering in turn.
	for range 2 * runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pkt := range work {
				if err := lastHop(ctx, sph, svc, exit, pkt, rp()); err != nil {
					failed.Store(&err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	select {
	case <-all:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d submissions answered after a minute", answered.Load(), len(pkts))
	}
	b.StopTimer()
	perOp := float64(cpu(b)-c0) / float64(b.N)
	b.ReportMetric(perOp, "cpu-ns/op")
	b.ReportMetric(1e9/perOp, "submissions/s/core")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "submissions/s")
	if n, _, err := st.Exact(ctx, sv.Definition.Name, store.KindCount, ""); err != nil || n[0].Int64() != int64(b.N) {
		b.Fatalf("%v rows stored for %d submissions (%v)", n, b.N, err)
	}
}

// lastHop is what mixd does with a packet at the exit provider (docs/spec/services.md section 2),
// less the replay filter.
func lastHop(ctx context.Context, sph *sphinx.Sphinx, svc *Service, key *keys.SphinxPrivateKey, pkt []byte, rp service.Replier) error {
	u, err := sph.Unwrap(key, pkt)
	if err != nil {
		return err
	}
	if u.Recipient == nil || u.Recipient.Service != Name {
		return fmt.Errorf("last hop: not for the survey service: %+v", u.Recipient)
	}
	surb, data, err := service.DecodeEnvelope(u.Payload, sph.Geometry().SURBSize())
	if err != nil {
		return err
	}
	r := rp.(*benchReplier)
	r.surb = surb
	return svc.Deliver(ctx, &service.Request{Recipient: u.Recipient.ID, Data: data}, r)
}

// benchReplier makes the reply packet as mixd's replier does, and drops it.
type benchReplier struct {
	sph  *sphinx.Sphinx
	g    sphinx.Geometry
	surb []byte
	sent func()
}

func (r *benchReplier) CanReply() bool { return r.surb != nil }

func (r *benchReplier) Reply(_ context.Context, data []byte) error {
	env, err := service.EncodeEnvelope(r.g.PayloadSize, r.g.SURBSize(), nil, data)
	if err != nil {
		return err
	}
	if _, _, err := r.sph.NewPacketFromSURB(r.surb, env); err != nil {
		return err
	}
	a, err := client.ParseAck(data)
	if err != nil {
		return err
	}
	if a.Status != client.AckStored {
		return fmt.Errorf("answered %v", a.Status)
	}
	r.sent()
	return nil
}

// prepare builds b.N packets, each a distinct submission with a SURB, and unwraps each at its
// first four hops, on every core.
func prepare(b *testing.B, sph *sphinx.Sphinx, sv *format.Signed, fwdKeys []*keys.SphinxPrivateKey, fwd, back []sphinx.Hop) [][]byte {
	b.Helper()
	g := sph.Geometry()
	pkts := make([][]byte, b.N)
	next := atomic.Int64{}
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	smp := dp.NewSampler(nil)
	var smpMu sync.Mutex
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(pkts) {
					return
				}
				if err := func() error {
					var id format.SubmissionID
					rand.Read(id[:])
					truth := []format.Answer{{Type: format.Categorical, Value: int64(i % 4)}, {Type: format.Integer, Value: int64(i % 181)}, {Type: format.Real, Value: int64(i % 1006)}, {Type: format.Boolean, Value: int64(i % 2)}}
					smpMu.Lock()
					sub, err := format.NewSubmission(sv, id, truth, smp)
					smpMu.Unlock()
					if err != nil {
						return err
					}
					data, err := sub.Marshal()
					if err != nil {
						return err
					}
					var mid client.MessageID
					rand.Read(mid[:])
					frags, err := client.Split(mid, data, client.FragmentCapacity(g))
					if err != nil {
						return err
					}
					surb, _, err := sph.NewSURB(rand.Reader, back, sphinx.Recipient{Service: "queue", ID: "alice"}, [sphinx.SURBIDSize]byte{})
					if err != nil {
						return err
					}
					env, err := service.EncodeEnvelope(g.PayloadSize, g.SURBSize(), surb, frags[0].Marshal())
					if err != nil {
						return err
					}
					pkt, err := sph.NewPacket(rand.Reader, fwd, sphinx.Recipient{Service: Name, ID: sv.Definition.Name}, env)
					if err != nil {
						return err
					}
					for _, k := range fwdKeys[:len(fwdKeys)-1] {
						u, err := sph.Unwrap(k, pkt)
						if err != nil {
							return err
						}
						pkt = u.Packet
					}
					pkts[i] = pkt
					return nil
				}(); err != nil {
					failed.Store(&err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	return pkts
}

// benchSurvey is the four-question survey of pkg/testnet's end-to-end benchmark.
func benchSurvey(b *testing.B) *format.Signed {
	k, err := keys.GenerateIdentityKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	defer k.Wipe()
	now := uint64(time.Now().Unix())
	sv, err := format.Sign(&format.Definition{
		Name: "commute", Title: "How do you get to work?", Collector: k.Public(), Opens: now - 60, Closes: now + 86400, Budget: 2 * dp.EpsilonUnit,
		Questions: []format.Question{
			{ID: "mode", Text: "Usual mode", Type: format.Categorical, Options: []string{"car", "bike", "train", "walk"}},
			{ID: "minutes", Text: "Minutes door to door", Type: format.Integer, Lo: 0, Hi: 180},
			{ID: "km", Text: "Distance", Type: format.Real, Decimals: 1, Lo: 0, Hi: 1005},
			{ID: "remote", Text: "Work from home sometimes", Type: format.Boolean, LocalEpsilon: dp.EpsilonUnit},
		},
	}, k)
	if err != nil {
		b.Fatal(err)
	}
	return sv
}

// cpu is the CPU time (user and system, every thread) the process has used.
func cpu(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
