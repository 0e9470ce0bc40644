package imapd

import (
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Password checks cost an argon2id hash each (64 MiB and tens of milliseconds by default), so
// who may spend one is decided before it starts, in one step per limit (issue 13, finding 4):
//
//  1. The failure limits, per user name and per client address, count a login as a failure
//     from the moment it is let through until its password has been checked; parallel guesses
//     therefore cannot all pass the limit before the first failure is recorded.
//  2. At most MaxConcurrentAuthPerIP logins of one address and MaxConcurrentAuthPerUser of one
//     user are checked at once, and at most authWaitPerKey more wait for their turn; a login
//     beyond that is refused at once. With these below MaxConcurrentAuth, a flood from one
//     address or against one user cannot hold every hash worker.
//  3. At most MaxAuthQueue logins wait for a hash worker; beyond that the server is busy.
//
// A refused login costs no hash and is answered NO [UNAVAILABLE] at once, whatever its
// password: the answer tells nothing about the password. A login that is let through is always
// checked in full.

// authWaitPerKey is how many logins of one address or user may wait while MaxConcurrentAuthPerIP
// or MaxConcurrentAuthPerUser of its own are being checked: enough for a mail program that opens
// a few connections at once, few enough that a flood is refused rather than queued.
const authWaitPerKey = 4

var (
	errLockedOut = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Too many failed logins, try again later"}
	errBusy      = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Too many logins in progress, try again later"}
)

// authGate decides which logins may check a password.
type authGate struct {
	userLimit, ipLimit *limiter
	users, ips         *slots
	workers            *slots // one key: the server's hash workers and their queue
}

func newAuthGate(cfg *Config) *authGate {
	return &authGate{
		userLimit: newLimiter(cfg.LoginFailures, cfg.LoginWindow),
		ipLimit:   newLimiter(cfg.LoginFailuresPerIP, cfg.LoginWindow),
		users:     newSlots(cfg.MaxConcurrentAuthPerUser, authWaitPerKey),
		ips:       newSlots(cfg.MaxConcurrentAuthPerIP, authWaitPerKey),
		workers:   newSlots(cfg.MaxConcurrentAuth, cfg.MaxAuthQueue),
	}
}

// begin returns once the login of user from ip holds a hash worker, or refuses it at once
// with errLockedOut or errBusy. The caller checks the password and then calls done with the
// outcome, which gives everything back and records a failure.
func (g *authGate) begin(user, ip string) (done func(ok bool), err error) {
	if err := g.ipLimit.reserve(ip); err != nil {
		return nil, err
	}
	if err := g.userLimit.reserve(user); err != nil {
		g.ipLimit.release(ip, false)
		return nil, err
	}
	var held []func()
	giveBack := func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i]()
		}
	}
	// Always in this order (address, user, worker), and a worker is never waited for while
	// holding another worker, so waiting cannot deadlock.
	for _, s := range []struct {
		slots *slots
		key   string
	}{{g.ips, ip}, {g.users, user}, {g.workers, ""}} {
		rel, ok := s.slots.acquire(s.key)
		if !ok {
			giveBack()
			g.userLimit.release(user, false)
			g.ipLimit.release(ip, false)
			return nil, errBusy
		}
		held = append(held, rel)
	}
	return func(ok bool) {
		giveBack()
		g.ipLimit.release(ip, !ok)
		g.userLimit.release(user, !ok)
		if ok {
			// The user got in: earlier failures under this name were probably the user's.
			g.userLimit.reset(user)
		}
	}, nil
}

// limiter counts failed logins per key within a window, and the logins in progress.
type limiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	now    func() time.Time
	fails  map[string]*failures
}

type failures struct {
	count   int // failures in the window that began at start
	pending int // logins let through and not yet checked
	start   time.Time
}

// maxLimiterKeys bounds the limiter's memory; past it, expired entries are dropped, and if none
// expired the oldest window without a login in progress is dropped, which errs towards letting a
// client try again.
const maxLimiterKeys = 100000

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, now: time.Now, fails: make(map[string]*failures)}
}

// reserve lets a login of key through if its failures and the logins in progress together are
// under the limit, and counts it as in progress until release.
func (l *limiter) reserve(key string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f := l.fails[key]
	if f == nil {
		if len(l.fails) >= maxLimiterKeys {
			l.pruneLocked(now)
		}
		f = &failures{start: now}
		l.fails[key] = f
	} else if now.Sub(f.start) >= l.window {
		f.count, f.start = 0, now
	}
	switch {
	case f.count >= l.max:
		return errLockedOut
	case f.count+f.pending >= l.max:
		return errBusy
	}
	f.pending++
	return nil
}

// release ends a login that reserve let through, counting it as a failure if failed.
func (l *limiter) release(key string, failed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[key]
	if f == nil {
		return
	}
	f.pending--
	if failed {
		f.count++
	}
	if f.count == 0 && f.pending <= 0 {
		delete(l.fails, key)
	}
}

// reset forgets key's failures; logins in progress stay counted.
func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.fails[key]; f != nil {
		f.count = 0
		if f.pending <= 0 {
			delete(l.fails, key)
		}
	}
}

func (l *limiter) pruneLocked(now time.Time) {
	var oldestKey string
	var oldest time.Time
	for k, f := range l.fails {
		switch {
		case f.pending > 0:
		case now.Sub(f.start) >= l.window:
			delete(l.fails, k)
		case oldestKey == "" || f.start.Before(oldest):
			oldestKey, oldest = k, f.start
		}
	}
	if len(l.fails) >= maxLimiterKeys && oldestKey != "" {
		delete(l.fails, oldestKey)
	}
}

// slots bounds, per key, the logins that are being checked (hold) and those waiting for their
// turn (wait); a login beyond both is refused at once rather than queued.
type slots struct {
	mu         sync.Mutex
	hold, wait int
	keys       map[string]*keySlots
}

type keySlots struct {
	sem chan struct{} // one token per login being checked
	n   int           // logins holding or waiting; the entry goes when it reaches 0
}

func newSlots(hold, wait int) *slots {
	return &slots{hold: hold, wait: wait, keys: make(map[string]*keySlots)}
}

// acquire waits for one of key's slots, or reports false at once if key already has hold+wait
// logins holding or waiting. The map holds only keys with logins in progress, which the
// connection limits bound.
func (s *slots) acquire(key string) (release func(), ok bool) {
	s.mu.Lock()
	k := s.keys[key]
	if k == nil {
		k = &keySlots{sem: make(chan struct{}, s.hold)}
		s.keys[key] = k
	}
	if k.n >= s.hold+s.wait {
		s.mu.Unlock()
		return nil, false
	}
	k.n++
	s.mu.Unlock()
	k.sem <- struct{}{}
	return func() {
		<-k.sem
		s.mu.Lock()
		defer s.mu.Unlock()
		if k.n--; k.n == 0 {
			delete(s.keys, key)
		}
	}, true
}

// cached lets a login through without a hash worker when hit reports that the login cache
// vouches for its password (authcache.go). A locked-out user or address is refused before the
// cache is asked, so a warm cache lets no guess past the failure limits. It reserves no failure
// slot: a hit lets in only a right password and a miss records nothing (the login then goes
// through begin, which reserves one, and its full check), and a reservation here would let a
// burst of one mail program's logins refuse each other (issue 16).
func (g *authGate) cached(user, ip string, hit func() bool) (bool, error) {
	if err := g.locked(user, ip); err != nil {
		return false, err
	}
	if !hit() {
		return false, nil
	}
	g.userLimit.reset(user)
	return true, nil
}

// locked refuses a login of user from ip with errLockedOut if either has reached its failure
// limit in the window; it reserves nothing. A login waiting for another login's check of the
// same password (authflight.go) passes it first, so that no login gets in under a lockout.
func (g *authGate) locked(user, ip string) error {
	if g.ipLimit.locked(ip) || g.userLimit.locked(user) {
		return errLockedOut
	}
	return nil
}

// locked reports whether key has reached the failure limit in its current window.
func (l *limiter) locked(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[key]
	return f != nil && l.now().Sub(f.start) < l.window && f.count >= l.max
}
