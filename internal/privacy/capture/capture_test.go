package capture

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// startOrSkip starts a capture; without tcpdump it skips with the install command, except under
// CI, where a missing tool is a failure (STYLE.md rule 17).
func startOrSkip(t *testing.T, opts Options) *Capture {
	t.Helper()
	c, err := Start(context.Background(), opts)
	if err == ErrNoTcpdump {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (CI installs it through scripts/install-test-deps.sh)", err)
		}
		t.Skipf("%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// TestLoopbackTLS writes frames of known sizes over a real TLS 1.3 connection on loopback and
// checks that the capture reads them back from outside: one frame per Write, of the written size,
// in the right direction, with the dialling end as the client. With PANORAMIX_CAPTURE_REGEN=1
// it also writes the capture to testdata/tls-loopback.pcap (the fuzz seed and TestTestdata).
func TestLoopbackTLS(t *testing.T) {
	const (
		nClient, sizeClient = 20, 21000 // above one record of 2^14, as a wire frame is
		nServer, sizeServer = 5, 300
	)
	cert := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert},
		MinVersion: tls.VersionTLS13, SessionTicketsDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	file := filepath.Join(t.TempDir(), "c.pcap")
	if os.Getenv("PANORAMIX_CAPTURE_REGEN") != "" {
		file = filepath.Join("testdata", "tls-loopback.pcap")
	}
	c := startOrSkip(t, Options{Ports: []uint16{port}, File: file})

	served := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer conn.Close()
		buf := make([]byte, sizeClient)
		for i := 0; i < nClient; i++ {
			if _, err := io.ReadFull(conn, buf); err != nil {
				served <- err
				return
			}
			if i%4 == 0 {
				if _, err := conn.Write(make([]byte, sizeServer)); err != nil {
					served <- err
					return
				}
			}
		}
		served <- nil
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().(*net.TCPAddr).AddrPort()
	// Keep the handshake's last flight a burst of its own (as it is on a wire link, where the
	// first frame follows later).
	if err := conn.Handshake(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(writeGap)
	for i := 0; i < nClient; i++ {
		if _, err := conn.Write(make([]byte, sizeClient)); err != nil {
			t.Fatal(err)
		}
		// Frames of a link are apart in time; sleeping is the point here, not a wait.
		time.Sleep(writeGap)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	conn.Close()
	time.Sleep(100 * time.Millisecond) // the FIN reaches the capture
	conns, dropped, err := c.StopDropped()
	if err != nil {
		t.Fatal(err)
	}
	if dropped != 0 {
		t.Fatalf("kernel dropped %d packets", dropped)
	}
	if len(conns) != 1 {
		t.Fatalf("%d connections captured, want 1: %v", len(conns), conns)
	}
	cc := conns[0]
	if !cc.SawSYN || cc.Client != local || cc.Server.Port() != port {
		t.Fatalf("connection %v (SYN seen %v), want client %v", cc, cc.SawSYN, local)
	}
	checkFrames(t, cc.Frames, nClient, sizeClient, nServer, sizeServer)
}

// writeGap separates the test's writes. A loaded machine may deschedule the writer between
// two records of one write for longer than BurstGap, splitting the write's burst in two (the
// measurement reports how often); checkFrames joins bursts closer than writeGap/2 first, so
// that the test checks the reading of records, not the scheduler.
const writeGap = 100 * time.Millisecond

// join merges the bursts of one direction that are less than gap apart.
func join(frames []Frame, gap time.Duration) []Frame {
	var out []Frame
	last := map[bool]int{}
	for _, f := range frames {
		if i, ok := last[f.FromClient]; ok && f.At.Sub(out[i].At) < gap {
			g := &out[i]
			g.Wire += f.Wire
			g.Size += f.Size
			g.Records += f.Records
			g.Parsed = g.Parsed && f.Parsed
			g.Handshake = g.Handshake || f.Handshake
			continue
		}
		out = append(out, f)
		last[f.FromClient] = len(out) - 1
	}
	return out
}

// checkFrames checks the frames of the test connection: n frames of size from each side, all
// parsed after crypto/tls's first small records, the handshake in frames of its own.
func checkFrames(t *testing.T, frames []Frame, nClient, sizeClient, nServer, sizeServer int) {
	t.Helper()
	frames = join(frames, writeGap/2)
	var fromClient, fromServer, parsed, handshake, closes int
	for _, f := range frames {
		switch {
		case f.Handshake:
			handshake++
			continue
		case f.Parsed && f.Size == 2 && f.Records == 1:
			// A close_notify alert (2 bytes inside an application-data record) at the end.
			closes++
			continue
		case f.FromClient:
			fromClient++
		default:
			fromServer++
		}
		if !f.Parsed {
			continue
		}
		parsed++
		if f.FromClient && f.Size != sizeClient || !f.FromClient && f.Size != sizeServer {
			t.Errorf("frame %+v: wrong size", f)
		}
	}
	if fromClient != nClient || fromServer != nServer || handshake == 0 || closes > 2 {
		t.Fatalf("frames: %d from client (want %d), %d from server (want %d), %d handshake",
			fromClient, nClient, fromServer, nServer, handshake)
	}
	// Go's small records last for the first 128 KB of a connection: about six client frames.
	if parsed < (nClient+nServer)/2 {
		t.Fatalf("only %d of %d frames parsed", parsed, nClient+nServer)
	}
}

// TestTestdata reads the committed capture of TestLoopbackTLS.
func TestTestdata(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "tls-loopback.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	conns, err := Analyze(bytes.NewReader(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(conns) != 1 || !conns[0].SawSYN {
		t.Fatalf("connections %v", conns)
	}
	checkFrames(t, conns[0].Frames, 20, 21000, 5, 300)
}
