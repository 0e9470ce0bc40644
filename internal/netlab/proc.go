package netlab

import (
	"fmt"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/childproc"
)

// Daemon is one program running in a host's namespace.
type Daemon struct {
	Name string
	Host *Host
	// Config is its configuration file, DataDir its data, Log its output.
	Config, DataDir, Log string

	bin  string
	args []string
	// proc is the process's lifecycle, with the same Name and Log, forked on spawnThread.
	proc childproc.Proc
}

// start runs the daemon in its host's namespace. `ip netns exec` enters the namespace and
// executes the program in its own process, so the pid is the daemon's and SIGKILL reaches it.
// Its own process group, killed with the lab's process (childproc.Proc.Start): a test that dies
// leaves no daemon behind in a namespace that Sweep then deletes.
func (d *Daemon) start() error {
	cmd := exec.Command("ip", append([]string{"netns", "exec", d.Host.NS, d.bin}, d.args...)...)
	if err := d.proc.Start(cmd); err != nil {
		return fmt.Errorf("netlab: %w", err)
	}
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
func (d *Daemon) Running() bool { return d.proc.Running() }

// stop sends sig and waits up to timeout; an unclean exit after SIGTERM is an error.
func (d *Daemon) stop(sig syscall.Signal, timeout time.Duration) error {
	if err := d.proc.Stop(sig, timeout); err != nil {
		return fmt.Errorf("netlab: %w", err)
	}
	return nil
}
