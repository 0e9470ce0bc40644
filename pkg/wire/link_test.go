package wire

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

func TestMutualAuth(t *testing.T) {
	for _, n := range networks() {
		t.Run(n.name, func(t *testing.T) {
			skey, ckey := newLinkKey(t), newLinkKey(t)
			rec := newRecorder()
			srv := serve(t, n, "", ServerConfig{Key: skey, Authorize: allow(ckey.Public()), Handle: rec.handle})
			c := mustDial(t, dialCfg(n, srv.addr, ckey, skey.Public()))

			if !c.Peer().Equal(skey.Public()) {
				t.Fatalf("client sees peer %v, want %v", c.Peer(), skey.Public())
			}
			sc := <-rec.conns
			if !sc.Peer().Equal(ckey.Public()) {
				t.Fatalf("server sees peer %v, want %v", sc.Peer(), ckey.Public())
			}
			for side, cs := range map[string]tls.ConnectionState{"client": c.ConnectionState(), "server": sc.ConnectionState()} {
				if cs.Version != tls.VersionTLS13 {
					t.Errorf("%s: TLS version %#04x, want 1.3", side, cs.Version)
				}
				if cs.CurveID != tls.X25519MLKEM768 {
					t.Errorf("%s: key exchange %v, want X25519MLKEM768", side, cs.CurveID)
				}
				if cs.NegotiatedProtocol != ALPN {
					t.Errorf("%s: ALPN %q, want %q", side, cs.NegotiatedProtocol, ALPN)
				}
				if cs.DidResume {
					t.Errorf("%s: session resumed", side)
				}
			}

			want := packet(0x42)
			if err := c.WriteFrame(want); err != nil {
				t.Fatal(err)
			}
			if got := rec.next(t); got.Cmd != CmdSendPacket || !bytes.Equal(got.Body, want.Body) {
				t.Fatalf("server got %v with %d body bytes", got.Cmd, len(got.Body))
			}
			if err := c.WriteFrame(&Frame{Cmd: CmdRetrieve, Seq: 5, QueueHint: 1}); err != nil {
				t.Fatal(err)
			}
			rec.next(t)
			got, err := c.ReadFrameTimeout(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got.Cmd != CmdEmpty || got.Seq != 5 {
				t.Fatalf("answer %v seq %d, want empty seq 5", got.Cmd, got.Seq)
			}
		})
	}
}

func TestLinkCertificateDeterministic(t *testing.T) {
	k := newLinkKey(t)
	a, err := linkCertificate(k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := linkCertificate(k)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Certificate[0], b.Certificate[0]) {
		t.Fatal("two certificates from one key differ")
	}
	got, err := PeerKey(tls.ConnectionState{PeerCertificates: []*x509.Certificate{a.Leaf}})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(k.Public()) {
		t.Fatalf("PeerKey = %v, want %v", got, k.Public())
	}
}

func TestWrongServerKeyRefused(t *testing.T) {
	for _, n := range networks() {
		t.Run(n.name, func(t *testing.T) {
			skey, ckey, other := newLinkKey(t), newLinkKey(t), newLinkKey(t)
			rec := newRecorder()
			srv := serve(t, n, "", ServerConfig{Key: skey, Authorize: allow(ckey.Public()), Handle: rec.handle})
			_, err := Dial(context.Background(), dialCfg(n, srv.addr, ckey, other.Public()))
			if !errors.Is(err, ErrPeer) {
				t.Fatalf("Dial with the wrong pinned key: err = %v, want ErrPeer", err)
			}
			waitFor(t, "server to count the refused handshake", func() bool { return srv.srv.Stats().Refused == 1 })
			rec.noConn(t)
		})
	}
}

func TestUnknownClientRefused(t *testing.T) {
	for _, n := range networks() {
		t.Run(n.name, func(t *testing.T) {
			skey, ckey, stranger := newLinkKey(t), newLinkKey(t), newLinkKey(t)
			rec := newRecorder()
			srv := serve(t, n, "", ServerConfig{Key: skey, Authorize: allow(ckey.Public()), Handle: rec.handle})

			if _, err := Dial(context.Background(), dialCfg(n, srv.addr, stranger, skey.Public())); err == nil {
				t.Fatal("Dial with an unauthorized key succeeded")
			}

			// Below Dial: in TLS 1.3 the client's handshake completes before the server has
			// checked the client's certificate, so a client can try to write at once. Nothing
			// it writes may reach the handler.
			cfg, err := ClientTLSConfig(stranger, skey.Public())
			if err != nil {
				t.Fatal(err)
			}
			tc := tls.Client(rawDial(t, n, srv.addr), cfg)
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tc.Handshake(); err == nil {
				b, _ := EncodeFrame(testGeometry, packet(1))
				tc.Write(b)
				_, err := io.ReadAll(tc)
				if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("refused client read: %v, want an alert from the server", err)
				}
			}
			waitFor(t, "server to count both refusals", func() bool { return srv.srv.Stats().Refused == 2 })
			rec.noConn(t)
			if len(rec.frames) != 0 {
				t.Fatal("a frame of a refused client reached the handler")
			}
		})
	}
}

// TestServerRefusesOffProfile checks the checks of spec section 3.3 from the server's side,
// against clients that hold an authorized key but do not follow the profile.
func TestServerRefusesOffProfile(t *testing.T) {
	n := networks()[1]
	skey, ckey := newLinkKey(t), newLinkKey(t)
	rec := newRecorder()
	srv := serve(t, n, "", ServerConfig{Key: skey, Authorize: allow(ckey.Public()), Handle: rec.handle})
	good, err := ClientTLSConfig(ckey, skey.Public())
	if err != nil {
		t.Fatal(err)
	}
	otherCert, err := linkCertificate(newLinkKey(t))
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	ecDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey.PublicKey, ecKey)
	if err != nil {
		t.Fatal(err)
	}
	variants := map[string]func(*tls.Config){
		"two certificates": func(c *tls.Config) {
			chain := c.Certificates[0]
			chain.Certificate = [][]byte{chain.Certificate[0], otherCert.Certificate[0]}
			c.Certificates = []tls.Certificate{chain}
		},
		"ECDSA certificate": func(c *tls.Config) {
			c.Certificates = []tls.Certificate{{Certificate: [][]byte{ecDER}, PrivateKey: ecKey}}
		},
		"no certificate":   func(c *tls.Config) { c.Certificates = nil },
		"no ALPN":          func(c *tls.Config) { c.NextProtos = nil },
		"other ALPN":       func(c *tls.Config) { c.NextProtos = []string{"h2"} },
		"classical X25519": func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.X25519} },
		"TLS 1.2":          func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12 },
	}
	refused := uint64(0)
	for name, edit := range variants {
		cfg := good.Clone()
		// A client that does not check the server either, so that only the server's checks
		// stand between it and a link.
		cfg.VerifyConnection = nil
		edit(cfg)
		tc := tls.Client(rawDial(t, n, srv.addr), cfg)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err == nil {
			// The server's verdict arrives after the client's handshake in TLS 1.3.
			if _, err := io.ReadAll(tc); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("%s: link accepted (read: %v)", name, err)
			}
		}
		tc.Close()
		refused++
		waitFor(t, name+" refusal", func() bool { return srv.srv.Stats().Refused == refused })
	}
	rec.noConn(t)
	// The unmodified profile still works.
	mustDial(t, dialCfg(n, srv.addr, ckey, skey.Public()))
}

func TestServerSurvivesBadConnections(t *testing.T) {
	for _, n := range networks() {
		t.Run(n.name, func(t *testing.T) {
			skey, ckey := newLinkKey(t), newLinkKey(t)
			rec := newRecorder()
			panicky := newLinkKey(t)
			handle := func(ctx context.Context, c *Conn) {
				if c.Peer().Equal(panicky.Public()) {
					panic("handler bug")
				}
				rec.handle(ctx, c)
			}
			srv := serve(t, n, "", ServerConfig{
				Key: skey, Authorize: allow(ckey.Public(), panicky.Public()), Handle: handle,
				HandshakeTimeout: 300 * time.Millisecond,
			})

			garbage := rawDial(t, n, srv.addr)
			garbage.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := garbage.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			// Stalls inside the first TLS record header.
			staller := rawDial(t, n, srv.addr)
			staller.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := staller.Write([]byte{0x16, 0x03}); err != nil {
				t.Fatal(err)
			}
			// Completes the TCP connection and sends nothing.
			silent := rawDial(t, n, srv.addr)
			silent.SetDeadline(time.Now().Add(10 * time.Second))

			// While those are open, a good client is served.
			c := mustDial(t, dialCfg(n, srv.addr, ckey, skey.Public()))
			if err := c.WriteFrame(packet(7)); err != nil {
				t.Fatal(err)
			}
			if f := rec.next(t); f.Body[0] != 7 {
				t.Fatal("wrong frame")
			}

			for name, rc := range map[string]interface{ Read([]byte) (int, error) }{"garbage": garbage, "staller": staller, "silent": silent} {
				if _, err := io.ReadAll(rc); errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("%s connection still open after the handshake timeout", name)
				}
			}

			// A handler panic ends that link only.
			p, err := Dial(context.Background(), dialCfg(n, srv.addr, panicky, skey.Public()))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.ReadFrameTimeout(10 * time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("link of the panicking handler not closed: %v", err)
			}
			p.Close()

			if err := c.WriteFrame(packet(8)); err != nil {
				t.Fatal(err)
			}
			if f := rec.next(t); f.Body[0] != 8 {
				t.Fatal("wrong frame")
			}
			mustDial(t, dialCfg(n, srv.addr, ckey, skey.Public()))
			// The server closes a refused connection before it counts it: give the count a
			// moment to catch up with what the clients already saw, then require exactly 3.
			for deadline := time.Now().Add(5 * time.Second); srv.srv.Stats().Refused < 3 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			if got := srv.srv.Stats().Refused; got != 3 {
				t.Errorf("Refused = %d, want 3", got)
			}
		})
	}
}

func TestMaxConnsPerPeer(t *testing.T) {
	for _, n := range networks() {
		t.Run(n.name, func(t *testing.T) {
			skey, a, b := newLinkKey(t), newLinkKey(t), newLinkKey(t)
			rec := newRecorder()
			srv := serve(t, n, "", ServerConfig{Key: skey, Authorize: allow(a.Public(), b.Public()), Handle: rec.handle, MaxConnsPerPeer: 2})
			a1 := mustDial(t, dialCfg(n, srv.addr, a, skey.Public()))
			mustDial(t, dialCfg(n, srv.addr, a, skey.Public()))
			if _, err := Dial(context.Background(), dialCfg(n, srv.addr, a, skey.Public())); err == nil {
				t.Fatal("third link of one peer accepted with MaxConnsPerPeer 2")
			}
			mustDial(t, dialCfg(n, srv.addr, b, skey.Public()))
			a1.Close()
			waitFor(t, "the closed link to be released", func() bool { return srv.srv.Stats().Open == 2 })
			mustDial(t, dialCfg(n, srv.addr, a, skey.Public()))
		})
	}
}

func TestMaxConns(t *testing.T) {
	n := networks()[1]
	skey, a, b := newLinkKey(t), newLinkKey(t), newLinkKey(t)
	srv := serve(t, n, "", ServerConfig{Key: skey, Authorize: allow(a.Public(), b.Public()), Handle: newRecorder().handle, MaxConns: 1})
	mustDial(t, dialCfg(n, srv.addr, a, skey.Public()))
	if _, err := Dial(context.Background(), dialCfg(n, srv.addr, b, skey.Public())); err == nil {
		t.Fatal("second link accepted with MaxConns 1")
	}
	if got := srv.srv.Stats(); got.Open != 1 || got.Refused != 1 {
		t.Fatalf("stats %+v, want 1 open and 1 refused", got)
	}
}

func TestServeStopsAndClosesLinks(t *testing.T) {
	n := networks()[0]
	skey, ckey := newLinkKey(t), newLinkKey(t)
	handlerStarted, handlerDone := make(chan struct{}), make(chan struct{})
	srv := serve(t, n, "", ServerConfig{Key: skey, Authorize: allow(ckey.Public()), Handle: func(ctx context.Context, c *Conn) {
		defer close(handlerDone)
		close(handlerStarted)
		<-ctx.Done() // a handler that only watches its context
	}})
	c := mustDial(t, dialCfg(n, srv.addr, ckey, skey.Public()))
	<-handlerStarted
	srv.stop(t)
	select {
	case <-handlerDone:
	default:
		t.Fatal("Serve returned before its handler")
	}
	if _, err := c.ReadFrameTimeout(10 * time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("link still open after Serve returned: %v", err)
	}
}

func TestConfigRefusals(t *testing.T) {
	k := newLinkKey(t)
	if _, err := ServerTLSConfig(k, nil); err == nil {
		t.Error("ServerTLSConfig without authorize accepted")
	}
	if _, err := ServerTLSConfig(nil, allow()); err == nil {
		t.Error("ServerTLSConfig without key accepted")
	}
	if _, err := ClientTLSConfig(k, keys.LinkPublicKey{}); err == nil {
		t.Error("ClientTLSConfig with a zero server key accepted")
	}
	ok := ServerConfig{Geometry: testGeometry, Key: k, Authorize: allow(), Handle: func(context.Context, *Conn) {}}
	bad := map[string]func(*ServerConfig){
		"geometry":   func(c *ServerConfig) { c.Geometry.Hops = 0 },
		"handle":     func(c *ServerConfig) { c.Handle = nil },
		"authorize":  func(c *ServerConfig) { c.Authorize = nil },
		"max conns":  func(c *ServerConfig) { c.MaxConns = -1 },
		"per peer":   func(c *ServerConfig) { c.MaxConnsPerPeer = -1 },
		"timeout":    func(c *ServerConfig) { c.HandshakeTimeout = -time.Second },
		"key absent": func(c *ServerConfig) { c.Key = nil },
	}
	for name, edit := range bad {
		cfg := ok
		edit(&cfg)
		if _, err := NewServer(cfg); err == nil {
			t.Errorf("NewServer accepted a config with a bad %s", name)
		}
	}
	if _, err := NewServer(ok); err != nil {
		t.Fatal(err)
	}
}

func TestPeerKeyRefuses(t *testing.T) {
	if _, err := PeerKey(tls.ConnectionState{}); !errors.Is(err, ErrPeer) {
		t.Errorf("no certificate: %v", err)
	}
	// A certificate for key a, signed by key b: not self-signed.
	a, b := newLinkKey(t), newLinkKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: certNotBefore, NotAfter: certNotAfter}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, a.Public().Ed25519(), b.Signer())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PeerKey(tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}); !errors.Is(err, ErrPeer) {
		t.Errorf("certificate signed by another key: %v", err)
	}
}
