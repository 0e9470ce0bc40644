package vote

import (
	"crypto/rand"
	"sync/atomic"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
)

// BenchmarkDeliver is the ballot box end to end without the network: fragment parsing, the
// cast's checks, the append with group commit and fsync, and the receipt, with as many
// concurrent deliveries as GOMAXPROCS*4 (the provider delivers in parallel).
func BenchmarkDeliver(b *testing.B) {
	h := newHarness(b, 1024)
	defer h.stop()
	capacity := client.FragmentCapacity(sphinx.DefaultGeometry())
	frags := make([][]byte, 4096)
	for i := range frags {
		c, err := board.NewCast(rand.Reader, h.p, h.voters[i%len(h.voters)], []int{i % 3})
		if err != nil {
			b.Fatal(err)
		}
		var mid client.MessageID
		rand.Read(mid[:])
		fs, _ := client.Split(mid, c.Marshal(), capacity)
		frags[i] = fs[0].Marshal()
	}
	var next atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)-1) % len(frags)
			a := h.deliverRaw("mayor", frags[i])
			if a.Status != client.AckStored {
				b.Errorf("status %s: %s", a.Status, a.Answer)
				return
			}
		}
	})
}
