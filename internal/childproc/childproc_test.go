package childproc

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newProc(t *testing.T) *Proc {
	t.Helper()
	p := &Proc{Name: "child", Log: filepath.Join(t.TempDir(), "child.log")}
	// A failed test must not leave its child running.
	t.Cleanup(func() { _ = p.Stop(syscall.SIGKILL, 10*time.Second) })
	return p
}

func sh(script string) *exec.Cmd { return exec.Command("sh", "-c", script) }

func TestNeverStarted(t *testing.T) {
	var p Proc
	if p.Running() {
		t.Error("running before Start")
	}
	if pid := p.Pid(); pid != 0 {
		t.Errorf("pid %d before Start", pid)
	}
	if err := p.Stop(syscall.SIGTERM, time.Second); err != nil {
		t.Errorf("stop of a process never started: %v", err)
	}
}

func TestStopCleanExit(t *testing.T) {
	p := newProc(t)
	// The shell exits 0 on SIGTERM, as a daemon that shuts down cleanly.
	if err := p.Start(sh(`trap 'echo bye; exit 0' TERM; echo up; sleep 60 & wait`)); err != nil {
		t.Fatal(err)
	}
	if !p.Running() {
		t.Fatal("not running after Start")
	}
	if p.Pid() <= 0 {
		t.Fatalf("pid %d", p.Pid())
	}
	waitForLog(t, p, "up")
	if err := p.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if p.Running() {
		t.Error("running after Stop")
	}
	if b, _ := os.ReadFile(p.Log); string(b) != "up\nbye\n" {
		t.Errorf("log %q, want the output before and at the signal", b)
	}
}

func TestStopUncleanExit(t *testing.T) {
	p := newProc(t)
	if err := p.Start(exec.Command("sleep", "60")); err != nil {
		t.Fatal(err)
	}
	err := p.Stop(syscall.SIGTERM, 10*time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("stop of sleep by SIGTERM: %v, want the exit status", err)
	}
	if !strings.Contains(err.Error(), "child exited uncleanly") || !strings.Contains(err.Error(), p.Log) {
		t.Errorf("error %q does not name the process and its log", err)
	}
	if errors.Is(err, ErrKilled) {
		t.Errorf("error %q says killed; the process stopped at SIGTERM", err)
	}
	// Stopping again sends nothing and reports the same exit.
	if err2 := p.Stop(syscall.SIGTERM, 10*time.Second); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("second stop: %v, want %v", err2, err)
	}
}

func TestStopSIGKILLIsNoError(t *testing.T) {
	p := newProc(t)
	if err := p.Start(exec.Command("sleep", "60")); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(syscall.SIGKILL, 10*time.Second); err != nil {
		t.Fatalf("stop with SIGKILL: %v", err)
	}
	if p.Running() {
		t.Error("running after SIGKILL")
	}
}

// TestIgnoredSIGTERMIsKilled: a process that ignores SIGTERM is killed after the timeout, with
// every process of its group (here its child, which inherits the ignored signal), and the
// error says so.
func TestIgnoredSIGTERMIsKilled(t *testing.T) {
	p := newProc(t)
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	if err := p.Start(sh(`trap '' TERM; sleep 60 & echo $! > ` + pidFile + `; echo up; wait`)); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, p, "up")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	grandchild, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	err = p.Stop(syscall.SIGTERM, 300*time.Millisecond)
	if !errors.Is(err, ErrKilled) {
		t.Fatalf("stop: %v, want ErrKilled", err)
	}
	for _, want := range []string{"child did not stop within 300ms after terminated; killed", p.Log} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if p.Running() {
		t.Error("running after the kill")
	}
	waitDead(t, grandchild)
}

func TestRestartAppendsToLog(t *testing.T) {
	p := newProc(t)
	for _, word := range []string{"first", "second"} {
		if err := p.Start(sh(`trap '' TERM; echo ` + word)); err != nil {
			t.Fatal(err)
		}
		// Once the shell has written, it ignores SIGTERM and exits 0 by itself: Stop returns
		// once it has.
		waitForLog(t, p, word)
		if err := p.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
			t.Fatalf("stop %s: %v", word, err)
		}
	}
	if b, _ := os.ReadFile(p.Log); string(b) != "first\nsecond\n" {
		t.Errorf("log %q, want both runs", b)
	}
}

func TestStartWhileRunningRefused(t *testing.T) {
	p := newProc(t)
	if err := p.Start(exec.Command("sleep", "60")); err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	if err := p.Start(exec.Command("sleep", "60")); err == nil || !strings.Contains(err.Error(), "child is already running") {
		t.Fatalf("second start: %v, want a refusal", err)
	}
	if p.Pid() != pid {
		t.Errorf("pid changed from %d to %d by a refused start", pid, p.Pid())
	}
}

func TestSpawnHook(t *testing.T) {
	p := newProc(t)
	calls := 0
	p.Spawn = func(start func() error) error { calls++; return start() }
	if err := p.Start(exec.Command("sleep", "60")); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("spawn called %d times, want 1", calls)
	}
	if !p.Running() {
		t.Error("not running after a start through Spawn")
	}

	q := newProc(t)
	refused := errors.New("no thread")
	q.Spawn = func(func() error) error { return refused }
	if err := q.Start(exec.Command("sleep", "60")); !errors.Is(err, refused) || !strings.Contains(err.Error(), "starting child") {
		t.Fatalf("start through a failing spawn: %v", err)
	}
	if q.Running() || q.Pid() != 0 {
		t.Error("a failed start left a process record")
	}
}

func TestStartErrors(t *testing.T) {
	p := &Proc{Name: "child", Log: filepath.Join(t.TempDir(), "missing", "child.log")}
	if err := p.Start(exec.Command("sleep", "60")); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "opening the log of child") {
		t.Errorf("start with a log in a missing directory: %v", err)
	}
	q := newProc(t)
	if err := q.Start(exec.Command(filepath.Join(t.TempDir(), "no-such-binary"))); err == nil || !strings.Contains(err.Error(), "starting child") {
		t.Errorf("start of a missing binary: %v", err)
	}
	if q.Running() {
		t.Error("running after a failed start")
	}
}

// waitForLog waits until p's log holds line, so that a signal does not reach the shell
// before it has set its trap.
func waitForLog(t *testing.T, p *Proc, line string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(p.Log); strings.Contains(string(b), line+"\n") {
			return
		}
	}
	t.Fatalf("%s never wrote %q", p.Log, line)
}

// waitDead waits until pid is gone or a zombie (killed, waiting for a reaper that is not us).
func waitDead(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return
		}
	}
	t.Fatalf("process %d of the group outlived the kill", pid)
}
