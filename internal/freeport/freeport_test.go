package freeport

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestAddrsDistinctBindableOutsideEphemeral(t *testing.T) {
	low, high := portRange()
	seen := map[string]bool{}
	for range 5 {
		addrs, err := Addrs(20)
		if err != nil {
			t.Fatal(err)
		}
		if len(addrs) != 20 {
			t.Fatalf("got %d addresses, want 20", len(addrs))
		}
		for _, a := range addrs {
			if seen[a] {
				t.Fatalf("%s handed out twice", a)
			}
			seen[a] = true
			_, ps, err := net.SplitHostPort(a)
			if err != nil {
				t.Fatal(err)
			}
			p, _ := strconv.Atoi(ps)
			if p < low || p > high {
				t.Fatalf("port %d outside %d-%d", p, low, high)
			}
			ln, err := net.Listen("tcp", a)
			if err != nil {
				t.Fatalf("%s not bindable after Addrs: %v", a, err)
			}
			ln.Close()
		}
	}
}

func TestSkipsPortsInUse(t *testing.T) {
	low, high := portRange()
	// Occupy part of the range; Addrs must never return an occupied port.
	busy := map[string]bool{}
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for p := low; p <= high && len(lns) < 200; p += (high - low) / 200 {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		busy[ln.Addr().String()] = true
	}
	addrs, err := Addrs(50)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if busy[a] {
			t.Fatalf("%s is in use but was handed out", a)
		}
	}
}

// The ports one process got stay refused to every other process while it lives, and come back
// when it ends.
func TestReservedAcrossProcesses(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock")
	}
	if os.Getenv("FREEPORT_CHILD") == "1" {
		addrs, err := Addrs(30)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(strings.Join(addrs, " "))
		io.Copy(io.Discard, os.Stdin) // hold them until the parent closes stdin
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReservedAcrossProcesses$")
	cmd.Env = append(os.Environ(), "FREEPORT_CHILD=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var ports []int
	for _, a := range strings.Fields(line) {
		_, ps, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatalf("child: %q", line)
		}
		p, _ := strconv.Atoi(ps)
		ports = append(ports, p)
	}
	if len(ports) != 30 {
		t.Fatalf("child gave %q", line)
	}
	mu.Lock()
	for _, p := range ports {
		if reserve(p) {
			release(p)
			mu.Unlock()
			t.Fatalf("port %d reserved here while the child holds it", p)
		}
	}
	mu.Unlock()
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range ports {
		if !reserve(p) {
			t.Fatalf("port %d still refused after the child ended", p)
		}
		release(p)
	}
}
