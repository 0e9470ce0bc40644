package capture

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Snaplen is how many bytes of each packet the capture keeps: the loopback Ethernet, IPv4 or
// IPv6 and TCP headers (14 + 40 + 60 at most) and the start of the payload, where a TLS record
// header usually is (crypto/tls writes each record with its own system call). A record header
// further inside a segment is lost and counted in Conn.Lost; what is kept is what the observer
// needs (sizes and times), not the bytes, which are ciphertext anyway.
const Snaplen = 160

// flushWait is tcpdump's packet buffer timeout (its -timeout default, 1000 ms) with a margin.
const flushWait = 1500 * time.Millisecond

// Install is the command that installs the capture program, for skip and error messages.
const Install = "apt-get install tcpdump"

// ErrNoTcpdump means tcpdump is not installed.
var ErrNoTcpdump = errors.New("capture: tcpdump not found (install it: " + Install + ")")

// Options say what to capture.
type Options struct {
	// Ports are the listening ports of the servers whose connections are captured; empty means
	// every TCP connection on the interface.
	Ports []uint16
	// Interface defaults to "lo".
	Interface string
	// File is the pcap file to write; empty means a file in a new temporary directory that
	// Stop removes.
	File string
}

// Capture is a running tcpdump.
type Capture struct {
	opts    Options
	cmd     *exec.Cmd
	tmpDir  string
	stderr  *tailBuffer
	done    chan error
	stopped sync.Once
}

// Start runs tcpdump on the interface and returns once it is capturing. It needs the capability
// to capture (root here). The context ends the capture if it is cancelled before Stop.
func Start(ctx context.Context, opts Options) (*Capture, error) {
	path, err := exec.LookPath("tcpdump")
	if err != nil {
		return nil, ErrNoTcpdump
	}
	if opts.Interface == "" {
		opts.Interface = "lo"
	}
	c := &Capture{opts: opts, stderr: &tailBuffer{}, done: make(chan error, 1)}
	if opts.File == "" {
		c.tmpDir, err = os.MkdirTemp("", "panoramix-capture-")
		if err != nil {
			return nil, fmt.Errorf("capture: %w", err)
		}
		c.opts.File = filepath.Join(c.tmpDir, "links.pcap")
	}
	// -U writes each packet as it comes, so Stop loses nothing buffered; -B gives the kernel
	// ring 32 MiB, so that bursts of a busy network are not dropped; -Z root keeps tcpdump
	// from switching to a user that may not write the file.
	args := []string{"-i", opts.Interface, "-n", "-U", "-B", "32768", "-s", strconv.Itoa(Snaplen),
		"-Z", "root", "-w", c.opts.File, filterExpr(opts.Ports)}
	c.cmd = exec.Command(path, args...)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		c.cleanup()
		return nil, fmt.Errorf("capture: %w", err)
	}
	if err := c.cmd.Start(); err != nil {
		c.cleanup()
		return nil, fmt.Errorf("capture: start tcpdump: %w", err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			c.stderr.add(line)
			if strings.Contains(line, "listening on") {
				once.Do(func() { close(ready) })
			}
		}
		c.done <- c.cmd.Wait()
	}()
	select {
	case <-ready:
	case err := <-c.done:
		c.done <- err
		c.cleanup()
		return nil, fmt.Errorf("capture: tcpdump exited at start (%v): %s", err, c.stderr.String())
	case <-time.After(30 * time.Second):
		c.kill()
		c.cleanup()
		return nil, fmt.Errorf("capture: tcpdump did not start within 30 s: %s", c.stderr.String())
	case <-ctx.Done():
		c.kill()
		c.cleanup()
		return nil, fmt.Errorf("capture: %w", ctx.Err())
	}
	go func() {
		<-ctx.Done()
		c.interrupt()
	}()
	return c, nil
}

// File is the pcap file being written.
func (c *Capture) File() string { return c.opts.File }

// Stop ends the capture and reads the file. Dropped reports the packets tcpdump said the kernel
// dropped: a capture that dropped packets has gaps, which Analyze counts in Conn.Lost.
func (c *Capture) Stop() ([]Conn, error) {
	conns, _, err := c.StopDropped()
	return conns, err
}

// StopDropped is Stop that also returns the number of packets the kernel dropped.
func (c *Capture) StopDropped() ([]Conn, int, error) {
	defer c.cleanup()
	// The kernel hands packets to tcpdump a block at a time, a block being retired when full or
	// after tcpdump's buffer timeout (1 s); tcpdump does not read a pending block when
	// interrupted, so the last second of traffic is given time to reach the file first.
	time.Sleep(flushWait)
	c.interrupt()
	var werr error
	select {
	case werr = <-c.done:
		c.done <- werr
	case <-time.After(30 * time.Second):
		c.kill()
		return nil, 0, fmt.Errorf("capture: tcpdump did not stop within 30 s")
	}
	dropped := c.stderr.dropped()
	if werr != nil && !interrupted(werr) {
		return nil, dropped, fmt.Errorf("capture: tcpdump: %w: %s", werr, c.stderr.String())
	}
	f, err := os.Open(c.opts.File)
	if err != nil {
		return nil, dropped, fmt.Errorf("capture: %w", err)
	}
	defer f.Close()
	conns, err := Analyze(bufio.NewReaderSize(f, 1<<20), c.opts.Ports)
	if err != nil {
		return nil, dropped, err
	}
	return conns, dropped, nil
}

func interrupted(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGINT {
			return true
		}
	}
	return false
}

func (c *Capture) interrupt() {
	c.stopped.Do(func() {
		if c.cmd.Process != nil {
			_ = c.cmd.Process.Signal(syscall.SIGINT)
		}
	})
}

func (c *Capture) kill() {
	if c.cmd.Process != nil {
		_ = c.cmd.Process.Kill()
	}
}

func (c *Capture) cleanup() {
	if c.tmpDir != "" {
		os.RemoveAll(c.tmpDir)
	}
}

// filterExpr keeps the segments that matter: those with payload, and SYN, FIN and RST (which
// say who dialled and when a connection ends); pure ACKs, most of the packets, are dropped in
// the kernel. IPv6 segments are kept whole (libpcap cannot compute the payload length there).
func filterExpr(ports []uint16) string {
	f := "tcp and (ip6 or tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0 or " +
		"(ip[2:2] - ((ip[0]&0xf)<<2) - ((tcp[12]&0xf0)>>2)) != 0)"
	if len(ports) == 0 {
		return f
	}
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = "port " + strconv.Itoa(int(p))
	}
	return f + " and (" + strings.Join(ps, " or ") + ")"
}

// tailBuffer keeps tcpdump's last lines of standard error.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (t *tailBuffer) add(l string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, l)
	if len(t.lines) > 20 {
		t.lines = t.lines[1:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "; ")
}

// dropped reads tcpdump's closing "N packets dropped by kernel".
func (t *tailBuffer) dropped() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range t.lines {
		if f := strings.Fields(l); len(f) >= 5 && strings.HasSuffix(l, "dropped by kernel") {
			n, err := strconv.Atoi(f[0])
			if err == nil {
				return n
			}
		}
	}
	return 0
}
