package plugin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// modeEnv makes the test binary a plugin (TestMain): a well-behaved one ("echo") or one of the
// hostile ones below.
const modeEnv = "PANORAMIX_PLUGIN_TEST_MODE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(modeEnv); mode != "" {
		testPlugin(mode, os.Getenv("PANORAMIX_PLUGIN_TEST_NAME"))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testPlugin speaks the protocol on stdin/stdout, misbehaving as mode says.
func testPlugin(mode, name string) { testPluginOn(mode, name, os.Stdin, os.Stdout) }

func testPluginOn(mode, name string, r io.Reader, w io.Writer) {
	in, out := bufio.NewReader(r), bufio.NewWriter(w)
	send := func(f *Frame) {
		out.Write(f.Marshal())
		out.Flush()
	}
	if mode == "hangonce" {
		// Hang in the first run, echo in the next (the marker says which run this is).
		marker := os.Getenv("PANORAMIX_PLUGIN_TEST_MARKER")
		if _, err := os.Stat(marker); err == nil {
			mode = "echo"
		} else {
			os.WriteFile(marker, nil, 0o600)
			mode = "hang"
		}
	}
	if mode == "linger" {
		// The escaped process: it holds the plugin's output until the test's directory goes.
		for {
			if _, err := os.Stat(os.Getenv("PANORAMIX_PLUGIN_TEST_MARKER")); err != nil {
				os.Exit(0)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if mode == "escape" {
		// Leave a process outside the plugin's group holding its output, then die.
		exe, _ := os.Executable()
		c := exec.Command(exe)
		c.Env = append(os.Environ(), modeEnv+"=linger")
		c.Stdout, c.SysProcAttr = os.Stdout, &syscall.SysProcAttr{Setsid: true}
		c.Start()
		os.Exit(1)
	}
	switch mode {
	case "nohello":
		time.Sleep(time.Hour)
	case "wrongname":
		name = "someone-else"
	}
	limit := uint16(64)
	if mode == "hang" {
		limit = 8 // TestBackPressure fills it
	}
	send((&Hello{Name: name, MaxInFlight: limit}).Frame())
	if mode == "flood" {
		// Unsolicited frames as fast as the pipe takes them.
		for id := uint64(1 << 40); ; id++ {
			send((&Answer{Status: client.AckStored, Answer: []byte("flood")}).Frame(id))
		}
	}
	for {
		f, err := ReadFrame(in, MaxFrame)
		if err != nil {
			return
		}
		r, err := ParseRequest(f)
		if err != nil {
			return
		}
		answer := &Answer{Status: client.AckStored, Answer: r.Data[:min(len(r.Data), client.MaxAckAnswer)]}
		switch mode {
		case "echo":
			send(answer.Frame(f.RequestID))
		case "stderr":
			// A flood on standard error: mixd logs ten lines a second and drops the rest.
			for i := range 20000 {
				fmt.Fprintf(os.Stderr, "noise %d %s\n", i, strings.Repeat("x", 2000))
			}
			send(answer.Frame(f.RequestID))
		case "garbage":
			out.Write([]byte{0, 0, 0, 12, 7, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
			out.Flush()
		case "hang":
		case "twice":
			send(answer.Frame(f.RequestID))
			send(answer.Frame(f.RequestID))
		case "oversize":
			send((&Answer{Status: client.AckStored, Answer: bytes.Repeat([]byte{'x'}, 600)}).Frame(f.RequestID))
		case "unknown":
			send(answer.Frame(f.RequestID + 1000))
		}
	}
}

// replies is a Replier that collects what a plugin's ACKs carry.
type replies struct{ ch chan []byte }

func newReplies() *replies        { return &replies{ch: make(chan []byte, 16)} }
func (r *replies) CanReply() bool { return true }
func (r *replies) Reply(_ context.Context, data []byte) error {
	r.ch <- append([]byte(nil), data...)
	return nil
}

// ack waits for the next ACK, or returns nil after wait.
func (r *replies) ack(t testing.TB, wait time.Duration) *client.Ack {
	t.Helper()
	select {
	case b := <-r.ch:
		a, err := client.ParseAck(b)
		if err != nil {
			t.Fatalf("reply is no ACK: %v", err)
		}
		return a
	case <-time.After(wait):
		return nil
	}
}

// started is a running plugin and what its test reads.
type started struct {
	*Plugin
	reg *prometheus.Registry
}

// start runs a plugin under Run until the test ends, and checks that Run returns at shutdown.
func start(t testing.TB, reg *prometheus.Registry, name string, command []string, env []string, timeout time.Duration) started {
	t.Helper()
	p, err := New(Config{Name: name, Command: command, Env: env, Dir: filepath.Join(t.TempDir(), name), MaxInFlight: 32,
		Timeout: timeout, Geometry: sphinx.DefaultGeometry(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("plugin %s: Run did not return after shutdown", name)
		}
	})
	return started{p, reg}
}

// self is the argv and environment that make the test binary a plugin in mode.
func self(t testing.TB, mode, name string) ([]string, []string) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe}, []string{modeEnv + "=" + mode, "PANORAMIX_PLUGIN_TEST_NAME=" + name}
}

func startSelf(t testing.TB, reg *prometheus.Registry, mode, name string, timeout time.Duration) started {
	argv, env := self(t, mode, name)
	return start(t, reg, name, argv, env, timeout)
}

// waitUp waits until the plugin said HELLO.
func (s started) waitUp(t testing.TB) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		up := s.cur != nil
		s.mu.Unlock()
		if up {
			return
		}
	}
	t.Fatalf("plugin %s not up", s.Name())
}

func (s started) counter(c *prometheus.CounterVec, labels ...string) float64 {
	var m dto.Metric
	if err := c.WithLabelValues(append([]string{s.Name()}, labels...)...).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// waitCounter waits until a counter of the plugin reaches want.
func (s started) waitCounter(t testing.TB, what string, c *prometheus.CounterVec, want float64, labels ...string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if s.counter(c, labels...) >= want {
			return
		}
	}
	t.Fatalf("plugin %s: %s %v is %v, want %v", s.Name(), what, labels, s.counter(c, labels...), want)
}

// fragment is data as the one fragment of message id.
func fragment(t testing.TB, id client.MessageID, data string) []byte {
	frags, err := client.Split(id, []byte(data), client.FragmentCapacity(sphinx.DefaultGeometry()))
	if err != nil {
		t.Fatal(err)
	}
	return frags[0].Marshal()
}

func newID() client.MessageID {
	var id client.MessageID
	rand.Read(id[:])
	return id
}

// deliver sends data as a new message to the plugin and returns its replier.
func (s started) deliver(t testing.TB, recipient string, id client.MessageID, data string) (*replies, error) {
	r := newReplies()
	return r, s.Deliver(context.Background(), &service.Request{Recipient: recipient, Data: fragment(t, id, data)}, r)
}

func TestEcho(t *testing.T) {
	s := startSelf(t, prometheus.NewRegistry(), "echo", "echo", 5*time.Second)
	s.waitUp(t)
	id := newID()
	r, err := s.deliver(t, "anyone", id, "hello plugin")
	if err != nil {
		t.Fatal(err)
	}
	a := r.ack(t, 10*time.Second)
	if a == nil || a.ID != id || a.Status != client.AckStored || string(a.Answer) != "hello plugin" {
		t.Fatalf("ack %+v", a)
	}
	// What mixd answers by itself: a message of two fragments, and data that is no fragment.
	frags, _ := client.Split(id, bytes.Repeat([]byte{1}, client.FragmentCapacity(sphinx.DefaultGeometry())+1), client.FragmentCapacity(sphinx.DefaultGeometry()))
	r = newReplies()
	if err := s.Deliver(context.Background(), &service.Request{Recipient: "x", Data: frags[1].Marshal()}, r); err != nil {
		t.Fatal(err)
	}
	if a := r.ack(t, time.Second); a == nil || a.Status != client.AckTooLarge || a.Index != 1 {
		t.Fatalf("two-fragment message: %+v", a)
	}
	bad := fragment(t, id, "x")
	bad[len(bad)-1] ^= 0xff // the data length no longer matches total_length
	bad = append(bad, 1)
	r = newReplies()
	if err := s.Deliver(context.Background(), &service.Request{Recipient: "x", Data: bad}, r); err != nil {
		t.Fatal(err)
	}
	if a := r.ack(t, time.Second); a == nil || a.Status != client.AckMalformed {
		t.Fatalf("malformed fragment: %+v", a)
	}
}

// TestBackPressure: over max_in_flight (the smaller of the configuration's 32 and the HELLO's 8),
// Deliver refuses at once without an ACK, and a down plugin refuses too.
func TestBackPressure(t *testing.T) {
	s := startSelf(t, prometheus.NewRegistry(), "hang", "hang", time.Minute)
	s.waitUp(t)
	for i := range 8 {
		if _, err := s.deliver(t, "r", newID(), "x"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	start := time.Now()
	r, err := s.deliver(t, "r", newID(), "x")
	if err == nil || !strings.Contains(err.Error(), ErrBusy.Error()) {
		t.Fatalf("ninth request: %v", err)
	}
	if a := r.ack(t, 0); a != nil {
		t.Fatalf("a refused request was acknowledged: %+v", a)
	}
	t.Logf("refused in %v", time.Since(start))
	if got := s.counter(s.v.requests, resultBusy); got != 1 {
		t.Fatalf("busy %v", got)
	}
	down := startSelf(t, s.reg, "nohello", "quiet", time.Minute)
	if _, err := down.deliver(t, "r", newID(), "x"); err == nil || !strings.Contains(err.Error(), ErrDown.Error()) {
		t.Fatalf("request before HELLO: %v", err)
	}
}

// TestHostile: each misbehaviour gets the plugin killed (counted by kind) and restarted, its
// request goes unacknowledged, and another plugin of the same mixd answers meanwhile.
func TestHostile(t *testing.T) {
	for _, c := range []struct{ mode, kind string }{
		{"garbage", violationGarbage},
		{"hang", violationHang},
		{"twice", violationAnsweredTwice},
		{"oversize", violationOversize},
		{"unknown", violationUnknownID},
		{"flood", violationUnknownID},
		{"wrongname", violationHello},
		{"nohello", violationHelloTimeout},
	} {
		t.Run(c.mode, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			good := startSelf(t, reg, "echo", "good", 5*time.Second)
			bad := startSelf(t, reg, c.mode, "bad", 500*time.Millisecond)
			good.waitUp(t)
			var r *replies
			switch c.mode {
			case "wrongname", "nohello", "flood":
				// Killed before (or right after) any request.
			default:
				bad.waitUp(t)
				var err error
				if r, err = bad.deliver(t, "r", newID(), "x"); err != nil {
					t.Fatal(err)
				}
			}
			bad.waitCounter(t, "violations", bad.v.violations, 1, c.kind)
			bad.waitCounter(t, "restarts", bad.v.restarts, 1)
			if r != nil {
				a := r.ack(t, 100*time.Millisecond)
				if c.mode == "twice" {
					if a == nil { // the first answer is a valid answer: acknowledged once
						t.Fatal("first answer not acknowledged")
					}
					a = r.ack(t, 100*time.Millisecond)
				}
				if a != nil {
					t.Fatalf("%s plugin's request acknowledged: %+v", c.mode, a)
				}
			}
			id := newID()
			gr, err := good.deliver(t, "r", id, "still here")
			if err != nil {
				t.Fatal(err)
			}
			if a := gr.ack(t, 30*time.Second); a == nil || a.ID != id || string(a.Answer) != "still here" {
				t.Fatalf("the other plugin's ack: %+v", a)
			}
			if v := good.counter(good.v.violations, c.kind); v != 0 {
				t.Fatalf("the good plugin has %v violations", v)
			}
		})
	}
}

// TestStderrFlood: a plugin that writes megabytes to its standard error is not killed (it
// breaks no rule), mixd drops the lines over its rate and keeps answering.
func TestStderrFlood(t *testing.T) {
	s := startSelf(t, prometheus.NewRegistry(), "stderr", "noisy", 30*time.Second)
	s.waitUp(t)
	id := newID()
	r, err := s.deliver(t, "r", id, "after the noise")
	if err != nil {
		t.Fatal(err)
	}
	if a := r.ack(t, 30*time.Second); a == nil || string(a.Answer) != "after the noise" {
		t.Fatalf("ack %+v", a)
	}
	s.waitCounter(t, "stderr dropped", s.v.stderrDropped, 1000)
	if v := s.counter(s.v.restarts); v != 0 {
		t.Fatalf("%v restarts", v)
	}
}

// python3 is Debian's interpreter, which the example plugins are for.
func python3(t testing.TB) string {
	for _, p := range []string{"/usr/bin/python3"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 missing (apt-get install python3)")
		}
		t.Skip("python3 missing: apt-get install python3")
	}
	return p
}

func kvdrop(t testing.TB) string {
	p, err := filepath.Abs("../../../contrib/plugins/kvdrop.py")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKVDrop runs contrib/plugins/kvdrop.py: PUT and GET, a retransmission answered from the
// stored answer without doing the work again, and a refusal.
func TestKVDrop(t *testing.T) {
	s := start(t, prometheus.NewRegistry(), "kvdrop", []string{python3(t), "-B", kvdrop(t)}, nil, 10*time.Second)
	s.waitUp(t)
	ask := func(id client.MessageID, data string) *client.Ack {
		t.Helper()
		r, err := s.deliver(t, "drop1", id, data)
		if err != nil {
			t.Fatal(err)
		}
		a := r.ack(t, 20*time.Second)
		if a == nil {
			t.Fatalf("%q: no answer", data)
		}
		return a
	}
	put1 := newID()
	if a := ask(put1, "PUT colour\nblue"); a.Status != client.AckStored || string(a.Answer) != "stored" {
		t.Fatalf("PUT: %+v", a)
	}
	if a := ask(newID(), "PUT colour\ngreen"); a.Status != client.AckStored {
		t.Fatalf("second PUT: %+v", a)
	}
	// The first PUT again (its ACK was lost, say): answered, not applied a second time.
	if a := ask(put1, "PUT colour\nblue"); a.Status != client.AckStored || string(a.Answer) != "stored" {
		t.Fatalf("retransmitted PUT: %+v", a)
	}
	if a := ask(newID(), "GET colour"); a.Status != client.AckStored || string(a.Answer) != "green" {
		t.Fatalf("GET: %+v %q", a, a.Answer)
	}
	if a := ask(put1, "PUT colour\nred"); a.Status != client.AckMalformed {
		t.Fatalf("a message id reused with other data: %+v", a)
	}
	if a := ask(newID(), "GET nothing"); a.Status != client.AckRefused || string(a.Answer) != "no value for nothing" {
		t.Fatalf("GET of a missing key: %+v", a)
	}
	if a := ask(newID(), "DELETE colour"); a.Status != client.AckMalformed {
		t.Fatalf("unknown verb: %+v", a)
	}
	if a := ask(newID(), "PUT big\n"+strings.Repeat("v", 501)); a.Status != client.AckMalformed {
		t.Fatalf("oversize value: %+v", a)
	}
}

// TestKVDropCrashAfterCommit: the plugin dies (SIGKILL of itself) after committing a PUT and
// before answering. The request is not acknowledged; mixd restarts the plugin; the sender's
// retransmission is answered from the stored answer, and the value is there once.
func TestKVDropCrashAfterCommit(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "crashed")
	s := start(t, prometheus.NewRegistry(), "kvdrop", []string{python3(t), "-B", kvdrop(t)}, []string{"PANORAMIX_PLUGIN_CRASH_ONCE=" + marker}, 10*time.Second)
	s.waitUp(t)
	id := newID()
	r, err := s.deliver(t, "d", id, "PUT k\nv1")
	if err != nil {
		t.Fatal(err)
	}
	s.waitCounter(t, "restarts", s.v.restarts, 1)
	if a := r.ack(t, 100*time.Millisecond); a != nil {
		t.Fatalf("acknowledged by a plugin that died before answering: %+v", a)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the plugin did not crash where the test meant: %v", err)
	}
	s.waitUp(t)
	for _, c := range []struct{ data, want string }{{"PUT k\nv1", "stored"}, {"GET k", "v1"}} {
		mid := id
		if c.data == "GET k" {
			mid = newID()
		}
		r, err := s.deliver(t, "d", mid, c.data)
		if err != nil {
			t.Fatal(err)
		}
		if a := r.ack(t, 20*time.Second); a == nil || a.Status != client.AckStored || string(a.Answer) != c.want {
			t.Fatalf("%q after the restart: %+v", c.data, a)
		}
	}
}

// TestManyPlugins: two plugins on one registry share the metric families.
func TestManyPlugins(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, name := range []string{"one", "two"} {
		startSelf(t, reg, "echo", name, 5*time.Second).waitUp(t)
	}
	if _, err := New(Config{Name: "Bad", Command: []string{"x"}, Dir: t.TempDir(), Geometry: sphinx.DefaultGeometry()}); err == nil {
		t.Fatal("a name outside NamePattern accepted")
	}
	if _, err := New(Config{Name: "ok", Dir: t.TempDir(), Geometry: sphinx.DefaultGeometry()}); err == nil {
		t.Fatal("neither a command nor a socket accepted")
	}
}

// TestPythonLibrary runs the unit tests of the plugin side (contrib/plugins/
// test_panoramix_plugin.py): its decoders on crafted and random input, kvdrop's handler.
func TestPythonLibrary(t *testing.T) {
	cmd := exec.Command(python3(t), "-m", "unittest", "-v", "test_panoramix_plugin")
	cmd.Dir = filepath.Dir(kvdrop(t))
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "\nOK") {
		t.Fatalf("no OK from unittest:\n%s", out)
	}
}

// TestKilledMidRequest: the plugin process is killed (SIGKILL, by pid) with requests in flight.
// They are abandoned without an ACK, mixd starts the plugin again, and the same requests sent
// again (the senders' retransmissions) are answered.
func TestKilledMidRequest(t *testing.T) {
	argv, env := self(t, "hangonce", "victim")
	env = append(env, "PANORAMIX_PLUGIN_TEST_MARKER="+filepath.Join(t.TempDir(), "ran"))
	s := start(t, prometheus.NewRegistry(), "victim", argv, env, time.Minute)
	s.waitUp(t)
	ids := []client.MessageID{newID(), newID(), newID()}
	var rs []*replies
	for _, id := range ids {
		r, err := s.deliver(t, "r", id, "in flight")
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	s.mu.Lock()
	pid := s.cur.cmd.Process.Pid
	s.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.waitCounter(t, "abandoned", s.v.requests, 3, resultAbandoned)
	s.waitCounter(t, "restarts", s.v.restarts, 1)
	for _, r := range rs {
		if a := r.ack(t, 0); a != nil {
			t.Fatalf("a request of the killed plugin was acknowledged: %+v", a)
		}
	}
	s.waitUp(t)
	for _, id := range ids {
		r, err := s.deliver(t, "r", id, "in flight")
		if err != nil {
			t.Fatal(err)
		}
		if a := r.ack(t, 10*time.Second); a == nil || a.ID != id || string(a.Answer) != "in flight" {
			t.Fatalf("retransmission after the restart: %+v", a)
		}
	}
	if v := s.counter(s.v.violations, violationHang); v != 0 {
		t.Fatalf("%v hang violations: the kill, not the timeout, ended the first run", v)
	}
}

// TestEscapedChild: a plugin leaves a process outside its group holding its standard output
// and exits. The output never ends, yet mixd closes it after the grace time and starts the
// plugin again.
func TestEscapedChild(t *testing.T) {
	argv, env := self(t, "escape", "escape")
	s := start(t, prometheus.NewRegistry(), "escape", argv, append(env, "PANORAMIX_PLUGIN_TEST_MARKER="+t.TempDir()), time.Second)
	s.waitCounter(t, "restarts", s.v.restarts, 2)
}

// TestSocket: a plugin that listens on a Unix socket instead of being started. Its first
// connection sends garbage: mixd closes it and connects again, and the second answers.
func TestSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugin.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mode := "echo"
			if i == 0 {
				mode = "garbage"
			}
			go func() { defer c.Close(); testPluginOn(mode, "sock", c, c) }()
		}
	}()
	reg := prometheus.NewRegistry()
	p, err := New(Config{Name: "sock", Socket: path, Dir: filepath.Join(t.TempDir(), "sock"), Timeout: 5 * time.Second,
		Geometry: sphinx.DefaultGeometry(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	s := started{p, reg}
	s.waitUp(t)
	r, err := s.deliver(t, "r", newID(), "x")
	if err != nil {
		t.Fatal(err)
	}
	s.waitCounter(t, "violations", s.v.violations, 1, violationGarbage)
	if a := r.ack(t, 100*time.Millisecond); a != nil {
		t.Fatalf("garbage acknowledged: %+v", a)
	}
	s.waitCounter(t, "restarts", s.v.restarts, 1)
	s.waitUp(t)
	id := newID()
	if r, err = s.deliver(t, "r", id, "over the socket"); err != nil {
		t.Fatal(err)
	}
	if a := r.ack(t, 10*time.Second); a == nil || a.ID != id || string(a.Answer) != "over the socket" {
		t.Fatalf("ack %+v", a)
	}
	if _, err := New(Config{Name: "both", Command: []string{"x"}, Socket: path, Dir: t.TempDir(), Geometry: sphinx.DefaultGeometry()}); err == nil {
		t.Fatal("a command and a socket accepted together")
	}
}

// TestKVDropOnSocket: kvdrop.py started on its own with PANORAMIX_PLUGIN_SOCKET listens on a
// Unix socket; mixd connects to it, and a PUT and a GET go through.
func TestKVDropOnSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "kvdrop.sock")
	cmd := exec.Command(python3(t), "-B", kvdrop(t))
	cmd.Env = append(os.Environ(), "PANORAMIX_PLUGIN_SOCKET="+sock, "PANORAMIX_PLUGIN_DIR="+dir, "PYTHONDONTWRITEBYTECODE=1")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	reg := prometheus.NewRegistry()
	p, err := New(Config{Name: "kvdrop", Socket: sock, Dir: filepath.Join(dir, "mixd"), Timeout: 10 * time.Second,
		Geometry: sphinx.DefaultGeometry(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	s := started{p, reg}
	s.waitUp(t) // the first connections may fail while python starts: mixd retries
	for _, c := range []struct{ data, want string }{{"PUT k\nover a socket", "stored"}, {"GET k", "over a socket"}} {
		r, err := s.deliver(t, "d", newID(), c.data)
		if err != nil {
			t.Fatal(err)
		}
		if a := r.ack(t, 20*time.Second); a == nil || a.Status != client.AckStored || string(a.Answer) != c.want {
			t.Fatalf("%q: %+v", c.data, a)
		}
	}
}
