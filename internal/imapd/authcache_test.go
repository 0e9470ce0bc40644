package imapd

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/passwd"
)

// TestAuthCacheRightPassword: a right password checked in full is not hashed again at the next
// login, a wrong one always is, and a new password voids the entry.
func TestAuthCacheRightPassword(t *testing.T) {
	var hashes atomic.Int32
	env := newEnv(t, func(c *Config) { c.beforeHash = func(string) { hashes.Add(1) } })
	env.addUser(t, "bob", "pw", 0)
	login := func(pass string) string {
		rc := dialRaw(t, env, true)
		_, st := rc.cmd(fmt.Sprintf("LOGIN bob %q", pass))
		return st
	}
	for i := range 3 {
		if st := login("pw"); !strings.HasPrefix(st, "OK") {
			t.Fatalf("login %d: %s", i+1, st)
		}
	}
	if n := hashes.Load(); n != 1 {
		t.Errorf("3 logins with the right password cost %d hashes, want 1 (then the cache)", n)
	}
	if st := login("wrong"); !strings.HasPrefix(st, "NO") {
		t.Fatalf("wrong password: %s", st)
	}
	if n := hashes.Load(); n != 2 {
		t.Errorf("a wrong password after a cached right one cost %d hashes in all, want 2: it must be hashed", n)
	}
	h, err := passwd.HashWithParams(rand.Reader, "new", cheapParams)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.store.SetPassword("bob", h); err != nil {
		t.Fatal(err)
	}
	if st := login("pw"); !strings.HasPrefix(st, "NO") {
		t.Errorf("the old password after a change: %s, want NO (the cache entry is void)", st)
	}
	if st := login("new"); !strings.HasPrefix(st, "OK") {
		t.Errorf("the new password: %s", st)
	}
}

// TestAuthCacheKeepsFailureLimit performs the attack a cache could open: with the user's right
// password in the cache, an attacker guesses until the failure limit locks the user name, and
// then tries the right password: it must be refused like any other, so a warm cache does not
// let guesses past the limit.
func TestAuthCacheKeepsFailureLimit(t *testing.T) {
	env := newEnv(t, func(c *Config) { c.LoginFailures = 3 })
	env.addUser(t, "bob", "pw", 0)
	rc := dialRaw(t, env, true)
	rc.login("bob", "pw") // warms the cache
	for i := range 3 {
		g := dialRaw(t, env, true)
		if _, st := g.cmd(fmt.Sprintf("LOGIN bob guess%d", i)); !strings.HasPrefix(st, "NO") {
			t.Fatalf("guess %d: %s", i, st)
		}
	}
	g := dialRaw(t, env, true)
	if _, st := g.cmd(`LOGIN bob pw`); !strings.Contains(st, "UNAVAILABLE") {
		t.Errorf("right password while locked out: %s, want NO [UNAVAILABLE]", st)
	}
}

// BenchmarkTenLoginsOneUser: ten connections of one user log in at once with the right password
// (a mail program opening its connections), with the production argon2id parameters and the
// default limits; it reports the median and 99th percentile of a login's time from LOGIN to its
// reply, over all rounds. The user has logged in once before (the cache is warm: a program that
// reconnects); the first login pays one full hash.
func BenchmarkTenLoginsOneUser(b *testing.B) { benchTenLogins(b, false) }

// BenchmarkTenLoginsOneUserCold is BenchmarkTenLoginsOneUser with the login cache emptied before
// every round (a mail program opening its connections after the server started): one login of
// each round pays the full hash and the nine others wait for it (authflight.go).
func BenchmarkTenLoginsOneUserCold(b *testing.B) { benchTenLogins(b, true) }

func benchTenLogins(b *testing.B, cold bool) {
	env := newEnv(b, nil)
	if err := env.store.CreateUser("bob", 0); err != nil {
		b.Fatal(err)
	}
	h, err := passwd.Hash("right password")
	if err != nil {
		b.Fatal(err)
	}
	if err := env.store.SetPassword("bob", h); err != nil {
		b.Fatal(err)
	}
	login := func() (time.Duration, error) {
		c, err := tls.Dial("tcp", env.tls, env.clientTLS())
		if err != nil {
			return 0, err
		}
		defer c.Close()
		buf := make([]byte, 4096)
		if _, err := c.Read(buf); err != nil { // greeting
			return 0, err
		}
		start := time.Now()
		if _, err := c.Write([]byte("a LOGIN bob \"right password\"\r\n")); err != nil {
			return 0, err
		}
		var got string
		for !strings.Contains(got, "a OK") && !strings.Contains(got, "a NO") {
			n, err := c.Read(buf)
			if err != nil {
				return 0, err
			}
			got += string(buf[:n])
		}
		if !strings.Contains(got, "a OK") {
			return 0, fmt.Errorf("login refused: %q", got)
		}
		return time.Since(start), nil
	}
	first, err := login()
	if err != nil {
		b.Fatal(err)
	}
	emptyCache := func() {
		env.srv.authCache.mu.Lock()
		clear(env.srv.authCache.entries)
		env.srv.authCache.mu.Unlock()
	}
	var all []time.Duration
	b.ResetTimer()
	for range b.N {
		if cold {
			b.StopTimer()
			emptyCache()
			b.StartTimer()
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := login()
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				all = append(all, d)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	b.StopTimer()
	b.ReportMetric(float64(first.Microseconds())/1000, "first-ms")
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	}
}

// TestTenColdLoginsOneHash: ten connections of one user log in at once with the right password
// and an empty login cache (a mail program opening its connections after a restart). All ten
// must get in, for one argon2id hash: the nine that present the same password while its hash is
// in flight wait for that hash instead of queueing behind it or being refused (on the code
// before, the per-user slots let one hash and four wait, and refused the other five).
func TestTenColdLoginsOneHash(t *testing.T) {
	const logins = 10
	var hashes, joined atomic.Int32
	g := newGate()
	env := newEnv(t, func(c *Config) {
		c.beforeHash = func(string) { hashes.Add(1); g.wait() }
		c.onJoin = func(string) { joined.Add(1) }
	})
	t.Cleanup(g.open)
	env.addUser(t, "bob", "right password", 0)
	results := make(chan guessResult, logins)
	for range logins {
		go func() {
			r, c, err := guess(env, "127.0.0.1", "bob", "right password")
			results <- guessResult{r, c, err}
		}()
	}
	rs := replies(t, results, logins)
	// The first hash is held until the nine others wait for it, or until a login is answered
	// without it (refused); the deadline only ends the wait, nothing depends on it.
	var got []string
	deadline := time.After(30 * time.Second)
wait:
	for joined.Load() < logins-1 {
		select {
		case r := <-rs:
			got = append(got, r)
			break wait
		case <-deadline:
			break wait
		case <-time.After(10 * time.Millisecond):
		}
	}
	g.open()
	got = collect(t, rs, got, logins, time.Minute)
	ok := 0
	for _, r := range got {
		if strings.HasPrefix(r, "OK") {
			ok++
		} else {
			t.Errorf("login answered %q", r)
		}
	}
	if ok != logins {
		t.Errorf("%d of %d simultaneous logins with the right password got in", ok, logins)
	}
	if n := hashes.Load(); n != 1 {
		t.Errorf("%d simultaneous logins with one password cost %d hashes, want 1", logins, n)
	}
}

// TestFlightSharesOnlySuccess: while one login's check of bob's right password is held, a login
// with a wrong password must not get in on it, and a login repeating a wrong password that is
// being checked must be checked in full itself (a hash and a failure of its own), not answered
// from the first check: a shared answer would let repeated guesses skip the failure limits.
func TestFlightSharesOnlySuccess(t *testing.T) {
	var hashes, joined atomic.Int32
	var held atomic.Pointer[gate] // the gate the checks wait at, one per phase
	g, g2 := newGate(), newGate()
	held.Store(g)
	env := newEnv(t, func(c *Config) {
		c.beforeHash = func(string) { hashes.Add(1); held.Load().wait() }
		c.onJoin = func(string) { joined.Add(1) }
	})
	t.Cleanup(g.open)
	t.Cleanup(g2.open)
	env.addUser(t, "bob", "right", 0)
	env.addUser(t, "carol", "hers", 0)
	send := func(user, pass string) <-chan string {
		out := make(chan string, 1)
		go func() {
			r, c, err := guess(env, "127.0.0.1", user, pass)
			if err != nil {
				out <- "error: " + err.Error()
				return
			}
			t.Cleanup(func() { c.Close() })
			out <- r
		}()
		return out
	}
	waitFor := func(cond func() bool) { // the deadline only ends the wait
		for end := time.Now().Add(30 * time.Second); !cond() && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	right := send("bob", "right")
	waitFor(func() bool { return hashes.Load() == 1 })
	wrong := send("bob", "wrong") // another password: queues for its own check, joins nothing
	g.open()
	if r := <-right; !strings.HasPrefix(r, "OK") {
		t.Errorf("right password: %q", r)
	}
	if r := <-wrong; !strings.HasPrefix(r, "NO [AUTHENTICATIONFAILED]") {
		t.Errorf("wrong password while the right one was checked: %q, want NO [AUTHENTICATIONFAILED]", r)
	}
	if n := hashes.Load(); n != 2 {
		t.Errorf("%d hashes for a right and a wrong password, want 2", n)
	}

	// A wrong password twice at once: the second waits for the first check, then is checked itself.
	held.Store(g2)
	hashes.Store(0)
	first := send("carol", "guess")
	waitFor(func() bool { return hashes.Load() == 1 })
	second := send("carol", "guess")
	waitFor(func() bool { return joined.Load() == 1 })
	g2.open()
	for i, ch := range []<-chan string{first, second} {
		if r := <-ch; !strings.HasPrefix(r, "NO [AUTHENTICATIONFAILED]") {
			t.Errorf("repeated wrong password %d: %q, want NO [AUTHENTICATIONFAILED]", i+1, r)
		}
	}
	if n, j := hashes.Load(), joined.Load(); j != 1 || n != 2 {
		t.Errorf("a wrong password sent twice at once: %d joined the first check and %d hashes, want 1 and 2 (each checked in full)", j, n)
	}
}
