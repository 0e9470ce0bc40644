package wire

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

func peerCfg(t testing.TB, n network, addr string, key *keys.LinkPrivateKey, remote keys.LinkPublicKey) PeerConfig {
	return PeerConfig{
		Geometry: testGeometry, Key: key, Remote: remote, Addr: addr, Transport: n.tr,
		QueueLen: 16, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		HandshakeTimeout: 5 * time.Second, WriteTimeout: 2 * time.Second, Logger: testLogger(t),
	}
}

// runPeer starts p.Run and returns a function that stops it and checks that Run returned nil.
func runPeer(t testing.TB, p *Peer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancellation")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestPeerReconnectsAndDeliversQueued(t *testing.T) {
	for _, n := range networks() {
		t.Run(n.name, func(t *testing.T) {
			skey, ckey := newLinkKey(t), newLinkKey(t)
			rec := newRecorder()
			srv := serve(t, n, "", ServerConfig{Key: skey, Authorize: allow(ckey.Public()), Handle: rec.handle})
			answers := make(chan *Frame, 16)
			cfg := peerCfg(t, n, srv.addr, ckey, skey.Public())
			cfg.OnFrame = func(f *Frame) { answers <- f }
			p, err := NewPeer(cfg)
			if err != nil {
				t.Fatal(err)
			}
			runPeer(t, p)

			if !p.Send(packet(1)) {
				t.Fatal("Send refused on an empty queue")
			}
			if f := rec.next(t); f.Cmd != CmdSendPacket || f.Body[0] != 1 {
				t.Fatalf("got %v", f.Cmd)
			}
			p.Send(&Frame{Cmd: CmdRetrieve, Seq: 3, QueueHint: 1})
			rec.next(t)
			select {
			case f := <-answers:
				if f.Cmd != CmdEmpty || f.Seq != 3 {
					t.Fatalf("answer %v seq %d, want empty seq 3", f.Cmd, f.Seq)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no answer reached OnFrame")
			}

			srv.stop(t)
			waitFor(t, "the peer to notice the server is gone", func() bool { return !p.Stats().Connected })
			for i := byte(2); i <= 4; i++ {
				if !p.Send(packet(i)) {
					t.Fatalf("Send %d refused", i)
				}
			}
			waitFor(t, "a failed redial", func() bool { return p.Stats().DialFailures > 0 })

			rec2 := newRecorder()
			serve(t, n, srv.addr, ServerConfig{Key: skey, Authorize: allow(ckey.Public()), Handle: rec2.handle})
			for i := byte(2); i <= 4; i++ {
				if f := rec2.next(t); f.Cmd != CmdSendPacket || f.Body[0] != i {
					t.Fatalf("after restart got %v %d, want packet %d", f.Cmd, f.Body[0], i)
				}
			}
			// The remote may read a frame before the writer has counted it.
			waitFor(t, "the count of sent frames", func() bool { return p.Stats().Sent == 5 })
			st := p.Stats()
			if st.Reconnects != 1 || st.Sent != 5 || st.Dropped != 0 || st.Lost != 0 || !st.Connected {
				t.Fatalf("stats %+v, want 1 reconnect, 5 sent, none dropped or lost, connected", st)
			}
		})
	}
}

func TestPeerSendNeverBlocksOnDeadRemote(t *testing.T) {
	for _, n := range networks() {
		t.Run(n.name, func(t *testing.T) {
			skey, ckey := newLinkKey(t), newLinkKey(t)
			// An address nobody listens on.
			ln, err := n.tr.Listen(n.listen)
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			cfg := peerCfg(t, n, addr, ckey, skey.Public())
			cfg.QueueLen = 4
			p, err := NewPeer(cfg)
			if err != nil {
				t.Fatal(err)
			}
			runPeer(t, p)
			for i := range 4 {
				if !p.Send(packet(byte(i))) {
					t.Fatalf("Send %d refused with room in the queue", i)
				}
			}
			for range 100 {
				if p.Send(packet(9)) {
					t.Fatal("Send accepted a frame into a full queue")
				}
			}
			waitFor(t, "dial failures", func() bool { return p.Stats().DialFailures >= 2 })
			st := p.Stats()
			if st.Dropped != 100 || st.Queued != 4 || st.Sent != 0 || st.Connected {
				t.Fatalf("stats %+v, want 100 dropped, 4 queued, none sent, not connected", st)
			}
		})
	}
}

// TestPeerStalledRemote: a remote that accepts the link and never reads must not block Send,
// nor another Peer's link.
func TestPeerStalledRemote(t *testing.T) {
	for _, n := range networks() {
		t.Run(n.name, func(t *testing.T) {
			g := sphinx.DefaultGeometry() // large frames fill the transport buffers quickly
			skey, slow, fast := newLinkKey(t), newLinkKey(t), newLinkKey(t)
			rec := newRecorder()
			srv := serve(t, n, "", ServerConfig{
				Geometry: g, Key: skey, Authorize: allow(slow.Public(), fast.Public()),
				Handle: func(ctx context.Context, c *Conn) {
					if c.Peer().Equal(slow.Public()) {
						<-ctx.Done() // never reads
						return
					}
					rec.handle(ctx, c)
				},
			})
			cfgSlow := peerCfg(t, n, srv.addr, slow, skey.Public())
			cfgSlow.Geometry = g
			cfgSlow.WriteTimeout = 200 * time.Millisecond
			pSlow, err := NewPeer(cfgSlow)
			if err != nil {
				t.Fatal(err)
			}
			cfgFast := peerCfg(t, n, srv.addr, fast, skey.Public())
			cfgFast.Geometry = g
			pFast, err := NewPeer(cfgFast)
			if err != nil {
				t.Fatal(err)
			}
			runPeer(t, pSlow)
			runPeer(t, pFast)

			body := &Frame{Cmd: CmdSendPacket, Body: make([]byte, g.PacketSize())}
			accepted := 0
			for range 3000 {
				if pSlow.Send(body) {
					accepted++
				}
			}
			if pSlow.Stats().Dropped == 0 {
				t.Fatalf("3000 frames to a remote that never reads, none dropped (%+v)", pSlow.Stats())
			}
			body.Body[0] = 0x77
			if !pFast.Send(body) {
				t.Fatal("the other peer's Send refused")
			}
			if f := rec.next(t); f.Body[0] != 0x77 {
				t.Fatal("wrong frame")
			}
			t.Logf("slow peer: %d accepted, %+v", accepted, pSlow.Stats())
		})
	}
}

func TestPeerStopSendsDisconnect(t *testing.T) {
	n := networks()[1]
	skey, ckey := newLinkKey(t), newLinkKey(t)
	rec := newRecorder()
	srv := serve(t, n, "", ServerConfig{Key: skey, Authorize: allow(ckey.Public()), Handle: rec.handle})
	p, err := NewPeer(peerCfg(t, n, srv.addr, ckey, skey.Public()))
	if err != nil {
		t.Fatal(err)
	}
	stop := runPeer(t, p)
	p.Send(packet(1))
	rec.next(t)
	stop()
	if f := rec.next(t); f.Cmd != CmdDisconnect {
		t.Fatalf("last frame %v, want disconnect", f.Cmd)
	}
	if p.Send(packet(2)) {
		t.Fatal("Send accepted a frame after Run returned")
	}
	if err := p.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
}

func TestPeerWrongRemoteKeyNeverConnects(t *testing.T) {
	n := networks()[1]
	skey, ckey, other := newLinkKey(t), newLinkKey(t), newLinkKey(t)
	rec := newRecorder()
	srv := serve(t, n, "", ServerConfig{Key: skey, Authorize: allow(ckey.Public()), Handle: rec.handle})
	p, err := NewPeer(peerCfg(t, n, srv.addr, ckey, other.Public()))
	if err != nil {
		t.Fatal(err)
	}
	p.Send(packet(1))
	runPeer(t, p)
	waitFor(t, "refused dials", func() bool { return p.Stats().DialFailures >= 3 })
	if st := p.Stats(); st.Connected || st.Sent != 0 || st.Queued != 1 || st.Reconnects != 0 {
		t.Fatalf("stats %+v: the frame must wait, unsent", st)
	}
	rec.noConn(t)
}

func TestPeerRefusesInvalidFrame(t *testing.T) {
	n := networks()[1]
	p, err := NewPeer(peerCfg(t, n, "x", newLinkKey(t), newLinkKey(t).Public()))
	if err != nil {
		t.Fatal(err)
	}
	if p.Send(&Frame{Cmd: CmdSendPacket, Body: []byte{1}}) {
		t.Fatal("short packet accepted")
	}
	if p.Send(&Frame{Cmd: CmdNoOp, Seq: 1}) {
		t.Fatal("no-op with a sequence number accepted")
	}
	if st := p.Stats(); st.Dropped != 2 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNewPeerRefusals(t *testing.T) {
	n := networks()[1]
	ok := peerCfg(t, n, "x", newLinkKey(t), newLinkKey(t).Public())
	bad := map[string]func(*PeerConfig){
		"geometry":      func(c *PeerConfig) { c.Geometry = sphinx.Geometry{} },
		"address":       func(c *PeerConfig) { c.Addr = "" },
		"key":           func(c *PeerConfig) { c.Key = nil },
		"remote":        func(c *PeerConfig) { c.Remote = keys.LinkPublicKey{} },
		"queue":         func(c *PeerConfig) { c.QueueLen = -1 },
		"backoff order": func(c *PeerConfig) { c.MinBackoff, c.MaxBackoff = time.Second, time.Millisecond },
		"timeout":       func(c *PeerConfig) { c.WriteTimeout = -1 },
	}
	for name, edit := range bad {
		cfg := ok
		edit(&cfg)
		if _, err := NewPeer(cfg); err == nil {
			t.Errorf("NewPeer accepted a bad %s", name)
		}
	}
	if _, err := NewPeer(ok); err != nil {
		t.Fatal(err)
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 10*time.Millisecond, 80*time.Millisecond
	var d time.Duration
	var seq []time.Duration
	for range 6 {
		d = nextBackoff(d, lo, hi)
		seq = append(seq, d)
	}
	want := []time.Duration{10, 20, 40, 80, 80, 80}
	for i := range want {
		if seq[i] != want[i]*time.Millisecond {
			t.Fatalf("backoff sequence %v, want %v ms", seq, want)
		}
	}
	for range 1000 {
		if j := jitter(hi); j < hi/2 || j > hi {
			t.Fatalf("jitter(%v) = %v, outside [%v, %v]", hi, j, hi/2, hi)
		}
	}
}
