//go:build !unix

package usage

import "time"

// CPU reports ErrUnsupported: process CPU time is read with getrusage, on Unix systems only.
func CPU() (time.Duration, error) { return 0, ErrUnsupported }
