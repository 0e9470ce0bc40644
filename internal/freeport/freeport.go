// Package freeport hands out loopback TCP addresses for programs that a test or `make run` starts
// and that bind the address themselves, a moment later.
//
// Asking the kernel for port 0 and closing the listener is not enough: the kernel takes such ports
// from the ephemeral range, the same range it uses for the local end of every outgoing connection.
// Between the close and the child's bind, any connection on the machine (another test's thousand
// clients, for one) may take the port, and the child fails with "address already in use".
// Ports below the ephemeral range are never given to outgoing connections, so this package picks
// random ports there, checks each by binding it, and holds them all until every one is chosen.
//
// A port is free only while nobody binds it: between a check and the child's bind, and while a
// test stops a node to restart it on the same address, another test process could pick it too.
// So a port handed out is also reserved across processes, for the life of the process that got it:
// an exclusive flock on a file named after the port in a directory shared by every process of the
// machine (reserve_unix.go). The kernel drops the lock when the process ends, however it ends, so
// there is nothing stale to clean up.
package freeport

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Linux's default ephemeral range starts at 32768; the range read from /proc overrides it.
const (
	defaultLow  = 20000
	defaultHigh = 32767
	minSpan     = 1000
)

var (
	mu    sync.Mutex
	given = map[int]bool{} // ports handed out by this process: never twice
)

// Addrs returns n distinct "127.0.0.1:port" addresses that were free when checked and lie outside
// the kernel's ephemeral port range.
func Addrs(n int) ([]string, error) {
	low, high := portRange()
	mu.Lock()
	defer mu.Unlock()
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	out := make([]string, 0, n)
	for tries := 0; len(out) < n; tries++ {
		if tries > 100*n+1000 {
			return nil, fmt.Errorf("freeport: no free loopback port in %d-%d after %d tries", low, high, tries)
		}
		p := low + randInt(high-low+1)
		if given[p] {
			continue
		}
		if !reserve(p) {
			continue // another process holds it
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			release(p)
			continue // in use
		}
		lns = append(lns, ln)
		given[p] = true
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// Addr is Addrs(1)[0].
func Addr() (string, error) {
	a, err := Addrs(1)
	if err != nil {
		return "", err
	}
	return a[0], nil
}

// portRange is the span below the ephemeral range ([defaultLow, ephemeral low - 1]), or the span
// above it when the one below is too small.
func portRange() (int, int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultLow, defaultHigh
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return defaultLow, defaultHigh
	}
	elow, err1 := strconv.Atoi(f[0])
	ehigh, err2 := strconv.Atoi(f[1])
	if err := errors.Join(err1, err2); err != nil || elow > ehigh {
		return defaultLow, defaultHigh
	}
	switch {
	case elow-1-defaultLow >= minSpan:
		return defaultLow, elow - 1
	case elow-1-1024 >= minSpan:
		return 1024, elow - 1
	case 65535-ehigh-1 >= minSpan:
		return ehigh + 1, 65535
	}
	return defaultLow, defaultHigh
}

func randInt(n int) int {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return int(binary.LittleEndian.Uint64(b[:]) % uint64(n))
}
