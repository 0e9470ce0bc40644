package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns` keeps its named namespaces (bind mounts).
const netnsDir = "/run/netns"

// namePrefix starts every namespace of a lab; the owner's pid follows, so that Sweep can tell a
// leftover (owner gone) from a running lab.
const namePrefix = "pnx"

var ownedName = regexp.MustCompile(`^` + namePrefix + `([0-9]+)x[0-9a-f]+-`)

// ip runs the ip command (iproute2) and returns its error with its output.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netlab: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNS runs args (a command) inside namespace ns and returns its error with its output.
func inNS(ns string, args ...string) error {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netlab: in %s: %s: %w: %s", ns, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// runPrefix is a new run's namespace prefix: this process's pid and a random token.
func runPrefix() string {
	var b [3]byte
	rand.Read(b[:])
	return namePrefix + strconv.Itoa(os.Getpid()) + "x" + hex.EncodeToString(b[:]) + "-"
}

// Sweep deletes the namespaces of labs whose owning process no longer runs (a test killed
// before its clean-up), with any process still inside them, and returns their names.
func Sweep() ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var gone []string
	var errs []error
	for _, e := range ents {
		m := ownedName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // the owner runs (or cannot be told apart from a running one)
		}
		if err := deleteNS(e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		gone = append(gone, e.Name())
	}
	return gone, errors.Join(errs...)
}

// deleteNS kills every process left in namespace ns, then deletes it (its veth ends go with it).
func deleteNS(ns string) error {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			// Never this process: a thread of ours that entered ns must not make us our own victim.
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	return ip("netns", "delete", ns)
}

// withNS runs f on an OS thread that has entered namespace ns. Sockets that f opens belong to
// ns and may be used from any goroutine afterwards. The thread goes back to its own namespace
// afterwards; if it cannot, it stays locked, and the runtime ends it with its goroutine, so no
// other goroutine ever runs in ns by accident.
func withNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netlab: own namespace: %w", err)
			return
		}
		defer unix.Close(home)
		fd, err := unix.Open(netnsDir+"/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netlab: namespace %s: %w", ns, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("netlab: entering namespace %s: %w", ns, err)
			return
		}
		err = f()
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// dialNS opens a TCP connection from inside namespace ns.
func dialNS(ctx context.Context, ns, addr string) (net.Conn, error) {
	var c net.Conn
	err := withNS(ns, func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// listenNS opens a TCP listener inside namespace ns.
func listenNS(ns, addr string) (net.Listener, error) {
	var l net.Listener
	err := withNS(ns, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	return l, err
}

// Owners lists the running processes that own labs (from their namespaces' names), other than
// this one, with their namespaces.
func Owners() (map[int][]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[int][]string{}
	for _, e := range ents {
		m := ownedName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid != os.Getpid() && syscall.Kill(pid, 0) == nil {
			out[pid] = append(out[pid], e.Name())
		}
	}
	return out, nil
}
