package freeport

import (
	"net"
	"strconv"
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
