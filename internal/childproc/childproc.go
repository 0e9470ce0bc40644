// Package childproc runs one program as a child process of a test harness (pkg/testnet,
// internal/netlab): started in a process group of its own with its output appended to a log
// file, reaped by one goroutine, and stopped by a signal to the whole group, with SIGKILL when
// it does not exit in time. The harnesses differ only in the command they build and in where
// it is started (Proc.Spawn); the lifecycle is this one copy, so a fix to it reaches both.
//
// Errors begin with the process's name, not with a package name: the harness wraps them with
// its own prefix ("netlab: ", "testnet: ").
package childproc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ErrKilled is wrapped by Stop's error when the process outlived the timeout and was killed.
var ErrKilled = errors.New("killed")

// Proc is one child process with its log file. Name, Log and Spawn are set before the first
// Start and not changed after. A Proc can be started again once it has exited (a restart after
// a crash); it is never copied after its first use.
type Proc struct {
	// Name names the process in errors; Log is the file its standard output and error are
	// appended to, so a restart adds to the log of the run before.
	Name, Log string
	// Spawn, when set, calls start (the command's Start) where the harness needs the fork to
	// happen, such as on one OS thread that outlives every child (Pdeathsig is tied to the
	// forking thread). Nil calls start on the caller's goroutine.
	Spawn func(start func() error) error

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // cmd.Wait's result, set before done is closed
}

// Start starts cmd, whose output it sends to Log, in a process group of its own (so that Stop's
// signal reaches the children it forks) and killed with the harness (a test that dies leaves no
// daemon holding its ports). It refuses a Proc that still runs: the older process would be
// lost to Stop.
func (p *Proc) Start(cmd *exec.Cmd) error {
	if p.Running() {
		return fmt.Errorf("%s is already running (log: %s)", p.Name, p.Log)
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening the log of %s: %w", p.Name, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	spawn := p.Spawn
	if spawn == nil {
		spawn = func(start func() error) error { return start() }
	}
	if err := spawn(cmd.Start); err != nil {
		f.Close()
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.err = cmd, done, nil
	p.mu.Unlock()
	// The one reaper: Stop and Running learn of the exit from done, never by waiting themselves.
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Running reports whether the process last started has not yet exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
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

// Pid is the process id of the process last started (its process group's id too), or 0 before
// the first Start. It stays set after the process exits.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop sends sig to the process group and waits up to timeout for the process to exit; past
// that it sends SIGKILL, waits, and returns an error wrapping ErrKilled. An exit other than a
// clean one is an error unless sig is SIGKILL (then it is what was asked for). Stopping a Proc
// never started, or one that has exited, sends nothing; the latter reports how it exited.
func (p *Proc) Stop(sig syscall.Signal, timeout time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
	default:
		// The group, not the pid alone: a child the daemon forked would keep its ports.
		_ = syscall.Kill(-cmd.Process.Pid, sig)
		select {
		case <-done:
		case <-time.After(timeout):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			return fmt.Errorf("%s did not stop within %v after %v; %w (log: %s)", p.Name, timeout, sig, ErrKilled, p.Log)
		}
	}
	if sig == syscall.SIGKILL {
		return nil
	}
	p.mu.Lock()
	err := p.err
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%s exited uncleanly: %w (log: %s)", p.Name, err, p.Log)
	}
	return nil
}
