package plugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// Defaults and bounds of a plugin's configuration (docs/spec/plugin.md section 6).
const (
	DefaultMaxInFlight = 64
	MaxMaxInFlight     = 65535
	DefaultTimeout     = 10 * time.Second
)

// Restart backoff and shutdown (section 5).
const (
	backoffMin    = 100 * time.Millisecond
	backoffMax    = 30 * time.Second
	healthyRun    = 30 * time.Second // a run this long resets the backoff
	shutdownGrace = 5 * time.Second
	// stderrLines per second are logged; stderrLineMax bytes of each.
	stderrLines   = 10
	stderrLineMax = 512
)

// DirEnv names the plugin's own directory in its environment.
const DirEnv = "PANORAMIX_PLUGIN_DIR"

// Config configures one plugin.
type Config struct {
	// Name is the service name; the plugin's HELLO must declare the same.
	Name string
	// Command is the argv started (no shell); or, when Socket is set instead, nothing is started
	// and mixd connects to the plugin at that Unix socket path.
	Command []string
	Socket  string
	// Env are KEY=VALUE entries added to the plugin's environment (PATH and DirEnv).
	Env []string
	// Dir is the plugin's working directory, created with mode 0700 (normally
	// data_dir/plugins/NAME).
	Dir string
	// MaxInFlight bounds the requests written and not answered (0: DefaultMaxInFlight).
	MaxInFlight int
	// Timeout bounds the wait for an answer (0: DefaultTimeout) and, if longer than
	// DefaultTimeout, for the HELLO.
	Timeout time.Duration
	// Geometry fixes the fragment capacity and must carry an ACK with a full answer.
	Geometry sphinx.Geometry
	// Logger receives the plugin's log lines and its standard error; nil discards them.
	Logger *slog.Logger
	// Registerer receives the mixd_plugin_* metrics; may be nil.
	Registerer prometheus.Registerer
}

// Plugin is one plugin's service. Deliver is safe for concurrent use and needs Run running.
type Plugin struct {
	cfg      Config
	capacity int
	log      *slog.Logger
	v        *vectors

	mu     sync.Mutex
	cur    *proc // the process that said HELLO, nil while down
	nextID uint64
	// lastViolationLog limits violation log lines to one a second (mu).
	lastViolationLog time.Time
}

// proc is one run of the plugin process.
type proc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser   // the process's standard input, or the socket connection
	conn    net.Conn         // set for a plugin reached over a Unix socket (cmd is nil then)
	out     chan []byte      // encoded REQUEST frames for the writer; len <= limit
	pending map[uint64]*call // Plugin.mu
	limit   int              // Plugin.mu
	firstID uint64           // request ids of this run are above it
	ready   chan struct{}    // closed by the reader after a valid HELLO
	dead    chan struct{}    // closed once the process is being killed or has exited
	once    sync.Once
}

// call is one request in flight.
type call struct {
	done  chan *Answer
	start time.Time
}

var _ service.Service = (*Plugin)(nil)

// New checks cfg and creates the plugin's directory; Run starts the process.
func New(cfg Config) (*Plugin, error) {
	if !service.NamePattern.MatchString(cfg.Name) {
		return nil, fmt.Errorf("plugin: name %q does not match %s", cfg.Name, service.NamePattern)
	}
	if (len(cfg.Command) == 0 || cfg.Command[0] == "") == (cfg.Socket == "") {
		return nil, fmt.Errorf("plugin %s: want a command or a socket, not both or neither", cfg.Name)
	}
	if cfg.Dir == "" {
		return nil, fmt.Errorf("plugin %s: no directory", cfg.Name)
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxInFlight < 1 || cfg.MaxInFlight > MaxMaxInFlight {
		return nil, fmt.Errorf("plugin %s: max_in_flight %d outside 1..%d", cfg.Name, cfg.MaxInFlight, MaxMaxInFlight)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("plugin %s: negative timeout", cfg.Name)
	}
	if err := cfg.Geometry.Validate(); err != nil {
		return nil, fmt.Errorf("plugin %s: %w", cfg.Name, err)
	}
	if r := service.Capacity(cfg.Geometry.PayloadSize, cfg.Geometry.SURBSize(), false); r < client.AckSize+2+client.MaxAckAnswer {
		return nil, fmt.Errorf("plugin %s: geometry %v carries %d bytes per reply, less than an ACK with a full answer", cfg.Name, cfg.Geometry, r)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("plugin %s: %w", cfg.Name, err)
	}
	v, err := newVectors(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("plugin", cfg.Name)
	for _, r := range []string{resultAnswered, resultBusy, resultDown, resultTimeout, resultAbandoned} {
		v.requests.WithLabelValues(cfg.Name, r)
	}
	v.restarts.WithLabelValues(cfg.Name)
	v.inFlight.WithLabelValues(cfg.Name)
	return &Plugin{cfg: cfg, capacity: client.FragmentCapacity(cfg.Geometry), log: log, v: v}, nil
}

// Name returns the configured service name.
func (p *Plugin) Name() string { return p.cfg.Name }

// Errors of Deliver for a request dropped unanswered: the sender retransmits.
var (
	ErrDown = errors.New("plugin: not running")
	ErrBusy = errors.New("plugin: max_in_flight requests in flight")
)

// Deliver hands one fragment to the plugin and returns at once: the ACK goes out through the
// SURB from a goroutine of the request when the plugin answers (docs/spec/plugin.md section 5),
// so mixd's delivery workers never wait for a plugin. A plugin that is down or has
// max_in_flight requests in flight gets nothing and Deliver returns an error, without ACK.
func (p *Plugin) Deliver(ctx context.Context, req *service.Request, reply service.Replier) error {
	f, err := client.ParseFragment(req.Data, p.capacity)
	if err != nil {
		if mid, index, ok := client.FragmentIDs(req.Data); ok {
			return p.ack(ctx, reply, mid, index, &Answer{Status: client.AckMalformed})
		}
		return nil
	}
	if f.Count != 1 {
		return p.ack(ctx, reply, f.ID, f.Index, &Answer{Status: client.AckTooLarge, Answer: []byte("a plugin request is one fragment")})
	}
	p.mu.Lock()
	pr := p.cur
	if pr == nil {
		p.mu.Unlock()
		p.v.requests.WithLabelValues(p.cfg.Name, resultDown).Inc()
		return fmt.Errorf("%s: %w", p.cfg.Name, ErrDown)
	}
	if len(pr.pending) >= pr.limit {
		p.mu.Unlock()
		p.v.requests.WithLabelValues(p.cfg.Name, resultBusy).Inc()
		return fmt.Errorf("%s: %w", p.cfg.Name, ErrBusy)
	}
	p.nextID++
	id := p.nextID
	c := &call{done: make(chan *Answer, 1), start: time.Now()}
	pr.pending[id] = c
	select {
	case pr.out <- (&Request{MessageID: f.ID, Reply: reply.CanReply(), Recipient: req.Recipient, Data: f.Data}).Frame(id).Marshal():
	default:
		// Not reached while out holds at most the requests pending; never wait here anyway.
		delete(pr.pending, id)
		p.mu.Unlock()
		p.v.requests.WithLabelValues(p.cfg.Name, resultBusy).Inc()
		return fmt.Errorf("%s: %w", p.cfg.Name, ErrBusy)
	}
	p.mu.Unlock()
	p.v.inFlight.WithLabelValues(p.cfg.Name).Inc()
	go p.await(ctx, pr, id, c, f, reply)
	return nil
}

// await waits for the answer to request id, its deadline, the process's end or mixd's
// shutdown, and acknowledges only an answer.
func (p *Plugin) await(ctx context.Context, pr *proc, id uint64, c *call, f *client.Fragment, reply service.Replier) {
	defer p.v.inFlight.WithLabelValues(p.cfg.Name).Dec()
	t := time.NewTimer(p.cfg.Timeout)
	defer t.Stop()
	var a *Answer
	timeout := false
	select {
	case a = <-c.done:
	case <-t.C:
		timeout = true
	case <-pr.dead:
	case <-ctx.Done():
	}
	if a == nil {
		// An answer read just before the plugin died or the deadline passed still counts:
		// the plugin answered, so the request is durable.
		select {
		case a = <-c.done:
		default:
		}
	}
	if a != nil {
		p.v.requests.WithLabelValues(p.cfg.Name, resultAnswered).Inc()
		p.v.answer.WithLabelValues(p.cfg.Name).Observe(time.Since(c.start).Seconds())
		if ctx.Err() != nil {
			return
		}
		if err := p.ack(ctx, reply, f.ID, f.Index, a); err != nil {
			p.log.Warn("ack not sent", "err", err)
		}
		return
	}
	if timeout {
		p.v.requests.WithLabelValues(p.cfg.Name, resultTimeout).Inc()
		p.kill(pr, violationHang, fmt.Errorf("request %d not answered within %v", id, p.cfg.Timeout))
	} else {
		p.v.requests.WithLabelValues(p.cfg.Name, resultAbandoned).Inc()
	}
	p.mu.Lock()
	delete(pr.pending, id)
	p.mu.Unlock()
}

// ack answers through the SURB, if the request carried one.
func (p *Plugin) ack(ctx context.Context, reply service.Replier, id client.MessageID, index uint16, a *Answer) error {
	if !reply.CanReply() {
		return nil
	}
	ack := client.Ack{ID: id, Index: index, Status: a.Status, Answer: a.Answer}
	if err := reply.Reply(ctx, ack.Marshal()); err != nil {
		return fmt.Errorf("plugin %s: ack %s (%s): %w", p.cfg.Name, id, a.Status, err)
	}
	return nil
}

// Run keeps the plugin process running until ctx ends, restarting it with backoff when it
// exits or is killed. It returns nil: a broken plugin must not stop the node.
func (p *Plugin) Run(ctx context.Context) error {
	backoff := backoffMin
	for {
		start := time.Now()
		err := p.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) >= healthyRun {
			backoff = backoffMin
		}
		p.log.Warn("plugin ended; restarting", "err", err, "after", backoff)
		p.v.restarts.WithLabelValues(p.cfg.Name).Inc()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// runOnce starts the process, serves it until it ends, and returns why it ended.
func (p *Plugin) runOnce(ctx context.Context) error {
	if p.cfg.Socket != "" {
		return p.runSocket(ctx)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return err
	}
	cmd := exec.Command(p.cfg.Command[0], p.cfg.Command[1:]...)
	cmd.Dir = p.cfg.Dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), DirEnv + "=" + p.cfg.Dir}, p.cfg.Env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	// The child holds its ends now; ours are closed so that our reads see EOF when it dies.
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return fmt.Errorf("start %q: %w", p.cfg.Command[0], err)
	}
	pr := &proc{cmd: cmd, stdin: inW, out: make(chan []byte, p.cfg.MaxInFlight), pending: map[uint64]*call{},
		ready: make(chan struct{}), dead: make(chan struct{})}
	p.mu.Lock()
	pr.firstID = p.nextID
	p.mu.Unlock()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); p.readLoop(pr, outR) }()
	go func() { defer wg.Done(); p.writeLoop(pr) }()
	go func() { defer wg.Done(); p.logStderr(errR) }()

	ready := pr.ready
	// The HELLO gets at least DefaultTimeout whatever the request timeout: an interpreter's
	// start on a loaded machine is slower than a plugin's answer needs to be.
	helloWait := max(p.cfg.Timeout, DefaultTimeout)
	hello := time.NewTimer(helloWait)
	defer hello.Stop()
	var why error
	for why == nil {
		select {
		case <-ready:
			p.log.Info("plugin ready", "pid", cmd.Process.Pid)
			ready = nil // a nil channel: wait for the rest only
		case <-hello.C:
			if ready != nil {
				p.kill(pr, violationHelloTimeout, fmt.Errorf("no HELLO within %v", helloWait))
			}
		case err := <-exited:
			why = fmt.Errorf("exited: %w", errOrExit(err))
			exited <- err
		case <-ctx.Done():
			why = ctx.Err()
			p.shutdown(pr, exited)
		}
	}
	p.markDead(pr)
	p.killGroup(pr)
	werr := <-exited
	if why == ctx.Err() {
		why = errOrExit(werr)
	}
	inW.Close()
	// The readers end at EOF, once every holder of the pipes' write ends is gone; something the
	// plugin started outside its process group may hold them, so they are closed after a grace.
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(shutdownGrace):
		p.log.Warn("plugin output still open after its exit; closing it")
	}
	outR.Close()
	errR.Close()
	<-drained
	return why
}

// runSocket connects to a plugin listening on a Unix socket and serves it until the
// connection ends (the plugin closed it, or mixd did for a violation or at shutdown).
func (p *Plugin) runSocket(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	conn, err := (&net.Dialer{}).DialContext(dctx, "unix", p.cfg.Socket)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	pr := &proc{stdin: conn, conn: conn, out: make(chan []byte, p.cfg.MaxInFlight), pending: map[uint64]*call{},
		ready: make(chan struct{}), dead: make(chan struct{})}
	p.mu.Lock()
	pr.firstID = p.nextID
	p.mu.Unlock()
	ended := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); p.writeLoop(pr) }()
	go func() { defer close(ended); p.readLoop(pr, conn) }()
	ready := pr.ready
	helloWait := max(p.cfg.Timeout, DefaultTimeout)
	hello := time.NewTimer(helloWait)
	defer hello.Stop()
	var why error
	for why == nil {
		select {
		case <-ready:
			p.log.Info("plugin connected", "socket", p.cfg.Socket)
			ready = nil
		case <-hello.C:
			if ready != nil {
				p.kill(pr, violationHelloTimeout, fmt.Errorf("no HELLO within %v", helloWait))
			}
		case <-ended:
			why = errors.New("connection ended")
		case <-ctx.Done():
			why = ctx.Err()
		}
	}
	p.markDead(pr)
	conn.Close()
	<-ended
	wg.Wait()
	return why
}

func errOrExit(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}

// shutdown closes the plugin's input, which asks it to exit, and kills it after the grace time.
func (p *Plugin) shutdown(pr *proc, exited chan error) {
	p.markDead(pr)
	pr.stdin.Close()
	select {
	case err := <-exited:
		exited <- err
	case <-time.After(shutdownGrace):
		p.killGroup(pr)
	}
}

// markDead takes pr out of service: Deliver refuses, its requests are abandoned.
func (p *Plugin) markDead(pr *proc) {
	pr.once.Do(func() {
		p.mu.Lock()
		if p.cur == pr {
			p.cur = nil
		}
		// Closed under mu: the reader makes pr current only if it is not dead, under mu.
		close(pr.dead)
		p.mu.Unlock()
	})
}

// kill counts and logs a violation of kind and kills the plugin; Run restarts it.
func (p *Plugin) kill(pr *proc, kind string, err error) {
	select {
	case <-pr.dead:
		return // one violation per run is enough
	default:
	}
	p.v.violations.WithLabelValues(p.cfg.Name, kind).Inc()
	p.mu.Lock()
	logIt := time.Since(p.lastViolationLog) >= time.Second
	if logIt {
		p.lastViolationLog = time.Now()
	}
	p.mu.Unlock()
	if logIt {
		p.log.Warn("plugin misbehaved; killing it", "kind", kind, "err", err)
	}
	p.markDead(pr)
	p.killGroup(pr)
}

func (p *Plugin) killGroup(pr *proc) {
	// The negative pid is the process group (Setpgid): whatever the plugin started dies too.
	if pr.cmd == nil {
		// A socket plugin is not ours to kill: the connection is closed, and a new one made.
		pr.conn.Close()
		return
	}
	if err := syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		pr.cmd.Process.Kill()
	}
}

// readLoop reads the HELLO, then answers, until the plugin's output ends or it misbehaves.
func (p *Plugin) readLoop(pr *proc, r io.Reader) {
	br := bufio.NewReaderSize(r, 4096)
	helloed := false
	for {
		f, err := ReadFrame(br, MaxPluginFrame)
		if err != nil {
			switch {
			case errors.Is(err, ErrOversize):
				p.kill(pr, violationOversize, err)
			case errors.Is(err, ErrFrame) && !errors.Is(err, io.ErrUnexpectedEOF):
				p.kill(pr, violationGarbage, err)
			}
			// Otherwise the output ended (exit or kill): runOnce sees the exit.
			io.Copy(io.Discard, br) // let the process finish writing and exit
			return
		}
		if !helloed {
			h, err := ParseHello(f)
			if err == nil && h.Name != p.cfg.Name {
				err = fmt.Errorf("HELLO names %q, the configuration %q", h.Name, p.cfg.Name)
			}
			if err != nil {
				p.kill(pr, violationHello, err)
				io.Copy(io.Discard, br)
				return
			}
			helloed = true
			p.mu.Lock()
			pr.limit = min(int(h.MaxInFlight), p.cfg.MaxInFlight)
			select {
			case <-pr.dead:
			default:
				p.cur = pr
			}
			p.mu.Unlock()
			close(pr.ready)
			continue
		}
		if kind, err := p.answer(pr, f); err != nil {
			p.kill(pr, kind, err)
			io.Copy(io.Discard, br)
			return
		}
	}
}

// answer hands an ANSWER to its request, or returns the violation it is.
func (p *Plugin) answer(pr *proc, f *Frame) (string, error) {
	if f.Type == TypeHello {
		return violationHello, errors.New("a second HELLO")
	}
	a, err := ParseAnswer(f)
	if err != nil {
		if f.Type == TypeAnswer {
			return violationBadAnswer, err
		}
		return violationGarbage, err
	}
	p.mu.Lock()
	c := pr.pending[f.RequestID]
	delete(pr.pending, f.RequestID)
	next := p.nextID
	p.mu.Unlock()
	if c == nil {
		if f.RequestID > pr.firstID && f.RequestID <= next {
			return violationAnsweredTwice, fmt.Errorf("ANSWER for request %d, answered or abandoned already", f.RequestID)
		}
		return violationUnknownID, fmt.Errorf("ANSWER for request %d, never sent to this run", f.RequestID)
	}
	a.Answer = append([]byte(nil), a.Answer...) // f's buffer is not reused, but keep the answer apart
	c.done <- a
	return "", nil
}

// writeLoop writes the request frames to the plugin's input. A plugin that does not read
// blocks only this goroutine; its requests time out and it is killed.
func (p *Plugin) writeLoop(pr *proc) {
	for {
		select {
		case <-pr.dead:
			return
		case b := <-pr.out:
			if _, err := pr.stdin.Write(b); err != nil {
				p.markDead(pr)
				return
			}
		}
	}
}

// logStderr logs the plugin's standard error, at most stderrLines lines a second, each cut to
// stderrLineMax bytes; the rest is counted and dropped so a flood costs mixd no log space.
func (p *Plugin) logStderr(r io.Reader) {
	br := bufio.NewReaderSize(r, stderrLineMax)
	window, n := time.Now(), 0
	for {
		line, err := br.ReadSlice('\n')
		full := err == nil
		if len(line) > 0 {
			if time.Since(window) >= time.Second {
				window, n = time.Now(), 0
			}
			if n < stderrLines {
				n++
				p.log.Info("plugin stderr", "line", string(trimNewline(line)))
			} else {
				p.v.stderrDropped.WithLabelValues(p.cfg.Name).Inc()
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			// Skip the rest of an overlong line.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			full = err == nil
		}
		if !full && err != nil {
			return
		}
	}
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
