package verificatum

import "sync"

// progress reports a long operation's advance to a caller's callback (Session.Progress). It
// may be fed from several goroutines; the callback is called under a lock, one call at a time,
// with done never decreasing. A nil *progress ignores everything.
type progress struct {
	mu    sync.Mutex
	f     func(done, total int)
	done  int
	total int
}

func newProgress(f func(done, total int), total int) *progress {
	if f == nil {
		return nil
	}
	return &progress{f: f, total: total}
}

// add records k more units of work done.
func (p *progress) add(k int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = min(p.done+k, p.total)
	p.f(p.done, p.total)
}
