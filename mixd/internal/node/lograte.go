package node

import (
	"sync"
	"time"
)

// logLimiter lets a log line of one kind through at most once per interval and counts the
// ones it held back, so that what anonymous senders can cause (a service refusing their
// packets) cannot fill the operator's log at their packet rate.
type logLimiter struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
	held     map[string]int
}

func newLogLimiter(interval time.Duration) *logLimiter {
	return &logLimiter{interval: interval, last: map[string]time.Time{}, held: map[string]int{}}
}

// allow reports whether a line of kind may be logged at now and, if so, how many lines of that
// kind were held back since the last one. Kinds are bounded by the caller (service names).
func (l *logLimiter) allow(kind string, now time.Time) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.last[kind]) < l.interval {
		l.held[kind]++
		return false, 0
	}
	l.last[kind] = now
	held = l.held[kind]
	l.held[kind] = 0
	return true, held
}
