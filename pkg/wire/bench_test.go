package wire

import (
	"context"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// BenchmarkLinkThroughput measures frames per second over one TLS link on loopback TCP with
// the default geometry: the client writes b.N send-packet frames, the server reads and
// decodes them all. Recorded in docs/BENCHMARKS.md.
func BenchmarkLinkThroughput(b *testing.B) {
	g := sphinx.DefaultGeometry()
	n := network{name: "tcp", tr: TCP, listen: "127.0.0.1:0"}
	skey, ckey := newLinkKey(b), newLinkKey(b)
	received := make(chan int, 1)
	var want int
	start := make(chan int, 1)
	srv := serve(b, n, "", ServerConfig{
		Geometry: g, Key: skey, Authorize: allow(ckey.Public()), Logger: discardLogger(),
		Handle: func(ctx context.Context, c *Conn) {
			want := <-start
			got := 0
			for got < want {
				if _, err := c.ReadFrame(); err != nil {
					break
				}
				got++
			}
			received <- got
		},
	})
	cfg := dialCfg(n, srv.addr, ckey, skey.Public())
	cfg.Geometry = g
	c := mustDial(b, cfg)
	f := &Frame{Cmd: CmdSendPacket, Body: make([]byte, g.PacketSize())}

	want = b.N
	b.SetBytes(int64(FrameSize(g)))
	b.ReportAllocs()
	b.ResetTimer()
	start <- want
	for range b.N {
		if err := c.WriteFrame(f); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case got := <-received:
		if got != want {
			b.Fatalf("server read %d frames, want %d", got, want)
		}
	case <-time.After(time.Minute):
		b.Fatal("server did not read every frame")
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
