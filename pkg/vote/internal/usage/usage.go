// Package usage measures what the vote benchmarks report besides wall time
// (docs/BENCHMARKS.md, pkg/vote): the process's peak resident memory and its CPU time. Reset
// starts a peak-memory measurement and Peak reads the highest resident set size since then,
// from Linux's /proc/self/status (VmHWM), the mark being reset through /proc/self/clear_refs;
// elsewhere both report ErrUnsupported. CPU is the process's user plus system time, the
// steadier figure on a machine shared with other work.
package usage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
)

// ErrUnsupported is returned where the kernel offers no resettable peak RSS.
var ErrUnsupported = errors.New("usage: peak resident memory not available on this system")

// Reset collects garbage, returns freed memory to the system, and resets the kernel's
// high-water mark to the current resident size, so that Peak reports the peak of what follows
// (including whatever stays resident from before, such as a benchmark's inputs).
func Reset() error {
	runtime.GC()
	debug.FreeOSMemory()
	// "5" resets VmHWM to the current RSS (proc(5), /proc/pid/clear_refs, Linux 4.0 and later).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	return nil
}

// Peak returns the highest resident set size in bytes since the last Reset (or since the
// process started).
func Peak() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	return parseHWM(b)
}

// parseHWM finds "VmHWM:   1234 kB" in the contents of /proc/self/status.
func parseHWM(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 3 && string(f[0]) == "VmHWM:" && string(f[2]) == "kB" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("usage: VmHWM %q: %w", f[1], err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("%w: no VmHWM line", ErrUnsupported)
}
