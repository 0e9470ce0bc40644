package netlab

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Daemon is one program running in a host's namespace.
type Daemon struct {
	Name string
	Host *Host
	// Config is its configuration file, DataDir its data, Log its output.
	Config, DataDir, Log string

	bin  string
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// start runs the daemon in its host's namespace. `ip netns exec` enters the namespace and
// executes the program in its own process, so the pid is the daemon's and SIGKILL reaches it.
func (d *Daemon) start() error {
	f, err := os.OpenFile(d.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", d.Host.NS, d.bin}, d.args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, and killed with the lab's process: a test that dies leaves no
	// daemon behind in a namespace that Sweep then deletes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := onSpawnThread(cmd.Start); err != nil {
		f.Close()
		return fmt.Errorf("netlab: starting %s: %w", d.Name, err)
	}
	done := make(chan struct{})
	d.mu.Lock()
	d.cmd, d.done, d.err = cmd, done, nil
	d.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		d.mu.Lock()
		d.err = err
		d.mu.Unlock()
		close(done)
	}()
	return nil
}

// spawnThread is one OS thread that starts every daemon and never exits: Pdeathsig fires when
// the thread that forked a child ends, not the process, and the runtime ends threads (those
// that withNS locked, for one); a daemon forked there would be killed at a random moment.
var spawnThread struct {
	once sync.Once
	ch   chan func()
}

// onSpawnThread runs f on spawnThread.
func onSpawnThread(f func() error) error {
	spawnThread.once.Do(func() {
		spawnThread.ch = make(chan func())
		go func() {
			runtime.LockOSThread() // for good: this thread must outlive every daemon
			for g := range spawnThread.ch {
				g()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnThread.ch <- func() { errc <- f() }
	return <-errc
}

// Running reports whether the daemon's process is alive.
func (d *Daemon) Running() bool {
	d.mu.Lock()
	done := d.done
	d.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// stop sends sig and waits up to timeout; an unclean exit after SIGTERM is an error.
func (d *Daemon) stop(sig syscall.Signal, timeout time.Duration) error {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
	default:
		_ = syscall.Kill(-cmd.Process.Pid, sig)
		select {
		case <-done:
		case <-time.After(timeout):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			return fmt.Errorf("netlab: %s did not stop within %v after %v; killed (log: %s)", d.Name, timeout, sig, d.Log)
		}
	}
	if sig == syscall.SIGKILL {
		return nil
	}
	d.mu.Lock()
	err := d.err
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("netlab: %s exited uncleanly: %w (log: %s)", d.Name, err, d.Log)
	}
	return nil
}
