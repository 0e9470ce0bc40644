package mailbox

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// ackCounter is a Replier that checks and counts acks without keeping them.
type ackCounter struct{ stored *atomic.Int64 }

func (ackCounter) CanReply() bool { return true }

func (r ackCounter) Reply(_ context.Context, data []byte) error {
	if a, err := client.ParseAck(data); err == nil && a.Status == client.AckStored {
		r.stored.Add(1)
	}
	return nil
}

// BenchmarkStoreAndAck measures storing one full fragment of the default geometry durably
// (committed, fsync'd) and acknowledging it: the first of two fragments of a new message, so
// each iteration also creates the message's record. "parallel" runs GOMAXPROCS*8 senders at
// once, as the node's unwrap workers do, so commits share their fsync.
func BenchmarkStoreAndAck(b *testing.B) {
	g := sphinx.DefaultGeometry()
	capacity := client.FragmentCapacity(g)
	data := make([]byte, capacity+1)
	bench := func(b *testing.B, parallel bool) {
		st, err := mailstore.Open(filepath.Join(b.TempDir(), "mail.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		if err := st.CreateUser("bob", 0); err != nil {
			b.Fatal(err)
		}
		s, err := New(Config{
			Path: filepath.Join(b.TempDir(), "mailbox.db"), Geometry: g, Backend: NewStoreBackend(st),
			MaxPending: 1 << 50, MaxUserPending: 1 << 50,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		var stored atomic.Int64
		var seq atomic.Uint64
		deliver := func() {
			var id client.MessageID
			n := seq.Add(1)
			for i := range 8 {
				id[i] = byte(n >> (8 * i))
			}
			f := &client.Fragment{ID: id, Index: 0, Count: 2, TotalLength: uint32(len(data)), Data: data[:capacity]}
			if err := s.Deliver(context.Background(), &service.Request{Recipient: "bob", Data: f.Marshal()}, ackCounter{&stored}); err != nil {
				b.Error(err)
			}
		}
		b.SetBytes(int64(capacity))
		b.ResetTimer()
		if parallel {
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					deliver()
				}
			})
		} else {
			for b.Loop() {
				deliver()
			}
		}
		b.StopTimer()
		if stored.Load() != int64(b.N) {
			b.Fatalf("%d stored acks for %d fragments", stored.Load(), b.N)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "fragments/s")
	}
	b.Run("sequential", func(b *testing.B) { bench(b, false) })
	b.Run("parallel", func(b *testing.B) { bench(b, true) })
}
