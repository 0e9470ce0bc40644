package usage

import (
	"errors"
	"testing"
)

func TestParseHWM(t *testing.T) {
	got, err := parseHWM([]byte("Name:\tx\nVmPeak:\t  9999 kB\nVmHWM:\t   2048 kB\nVmRSS:\t 1000 kB\n"))
	if err != nil || got != 2048*1024 {
		t.Fatalf("parseHWM = %d, %v; want %d", got, err, 2048*1024)
	}
	if _, err := parseHWM([]byte("VmRSS:\t 1000 kB\n")); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("missing VmHWM: %v, want ErrUnsupported", err)
	}
}

// TestPeakSeesAllocation: touching 64 MB after Reset raises the peak by about that much, and a
// second Reset after freeing it brings the mark back down.
func TestPeakSeesAllocation(t *testing.T) {
	if err := Reset(); errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	base, err := Peak()
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	buf := make([]byte, size)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	high, err := Peak()
	if err != nil {
		t.Fatal(err)
	}
	if high-base < size*3/4 {
		t.Fatalf("peak rose by %d bytes after touching %d", high-base, size)
	}
	if err := Reset(); err != nil {
		t.Fatal(err)
	}
	low, err := Peak()
	if err != nil {
		t.Fatal(err)
	}
	if low > high-size/2 {
		t.Fatalf("peak after reset %d, before %d: the mark was not reset", low, high)
	}
}

// TestCPUCounts: busy work on this goroutine advances the CPU clock.
func TestCPUCounts(t *testing.T) {
	before, err := CPU()
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	x := uint64(1)
	for before2, _ := CPU(); ; {
		for range 1 << 20 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		now, err := CPU()
		if err != nil {
			t.Fatal(err)
		}
		if now > before2 {
			break
		}
	}
	if x == 0 {
		t.Log(x) // keeps the loop from being optimised away
	}
	after, err := CPU()
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("CPU time did not advance: %v then %v", before, after)
	}
}
