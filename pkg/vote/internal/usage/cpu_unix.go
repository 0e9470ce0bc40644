//go:build unix

package usage

import (
	"fmt"
	"syscall"
	"time"
)

// CPU returns the user plus system CPU time the process has used so far, on all threads.
func CPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("usage: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
