package imapd

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The attacks of issue 13, findings 4 (login limit race) and 5 (connection slots), performed
// over real connections against a running server.

// guess logs in once over implicit TLS from the loopback address local (127.0.0.2 is a second
// client address: Linux routes all of 127/8 to lo) and returns the tagged reply, with the
// connection left open so that the guess stays in flight until the caller closes it.
func guess(env *testEnv, local, user, pass string) (string, net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	raw, err := d.Dial("tcp", env.tls)
	if err != nil {
		return "", nil, err
	}
	c := tls.Client(raw, env.clientTLS())
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	if g, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(g, "* OK") {
		c.Close()
		return "", nil, fmt.Errorf("greeting %q: %v", g, err)
	}
	if _, err := fmt.Fprintf(c, "g LOGIN %q %q\r\n", user, pass); err != nil {
		c.Close()
		return "", nil, err
	}
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			c.Close()
			return "", nil, fmt.Errorf("login reply: %w", err)
		}
		if st, ok := strings.CutPrefix(l, "g "); ok {
			return strings.TrimRight(st, "\r\n"), c, nil
		}
	}
}

// dialRawFrom is dialRaw over implicit TLS from the loopback address local.
func dialRawFrom(t *testing.T, env *testEnv, local string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	raw, err := d.Dial("tcp", env.tls)
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, env.clientTLS())
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	if g := rc.readLine(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	return rc
}

// gate holds the password checks that tests let through the server's beforeHash hook until it
// is opened, so that the guesses are all in flight at once whatever the scheduling.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) wait() { <-g.ch }
func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// collect receives from replies until want of them have arrived or wait has passed: a server
// that queues the guesses instead of answering them answers none while their checks are held.
// The time only ends the wait; no assertion depends on it.
func collect(t *testing.T, replies <-chan string, got []string, want int, wait time.Duration) []string {
	t.Helper()
	timeout := time.After(wait)
	for len(got) < want {
		select {
		case r := <-replies:
			got = append(got, r)
		case <-timeout:
			return got
		}
	}
	return got
}

type guessResult struct {
	reply string
	conn  net.Conn
	err   error
}

// flood sends n guesses in parallel from local, each on its own connection; user(i) names the
// account of guess i.
func flood(env *testEnv, n int, local string, user func(int) string) <-chan guessResult {
	out := make(chan guessResult, n)
	for i := range n {
		go func() {
			r, c, err := guess(env, local, user(i), "wrong")
			out <- guessResult{r, c, err}
		}()
	}
	return out
}

// replies turns flood results into their replies, closing each connection once the test ends.
func replies(t *testing.T, results <-chan guessResult, n int) <-chan string {
	out := make(chan string, n)
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for range n {
			r := <-results
			if r.err != nil {
				out <- "error: " + r.err.Error()
				continue
			}
			mu.Lock()
			conns = append(conns, r.conn)
			mu.Unlock()
			out <- r.reply
		}
	}()
	return out
}

// TestParallelGuessesOneUser: 60 wrong passwords for one user at once, each on its own
// connection. The failure limit must bound the passwords actually checked: on main all 60 passed
// the check before the first failure was recorded.
func TestParallelGuessesOneUser(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Config)
	}{
		{"defaults", func(*Config) {}},
		// Only the failure limit's reservation stands between the guesses and the hash.
		{"wide concurrency bounds", func(c *Config) {
			c.MaxConcurrentAuthPerIP, c.MaxConcurrentAuthPerUser, c.MaxAuthQueue = 100, 100, 100
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { parallelGuesses(t, tc.modify) })
	}
}

func parallelGuesses(t *testing.T, modify func(*Config)) {
	const guesses, limit = 60, 5
	var checked atomic.Int32
	g := newGate()
	env := newEnv(t, func(c *Config) {
		c.LoginFailures, c.LoginFailuresPerIP, c.LoginWindow = limit, 1000, time.Hour
		c.MaxConnectionsPerIP = 2 * guesses
		c.beforeHash = func(string) { checked.Add(1); g.wait() }
		modify(c)
	})
	t.Cleanup(g.open) // before the server's shutdown, which waits for the held logins
	env.addUser(t, "bob", "right", 0)

	rs := replies(t, flood(env, guesses, "127.0.0.1", func(int) string { return "bob" }), guesses)
	// Every guess beyond those being checked is answered at once.
	got := collect(t, rs, nil, guesses-limit, 10*time.Second)
	g.open()
	got = collect(t, rs, got, guesses, time.Minute)
	if len(got) != guesses {
		t.Fatalf("%d of %d guesses answered", len(got), guesses)
	}
	var failed, refused int
	for _, r := range got {
		switch {
		case strings.HasPrefix(r, "NO [AUTHENTICATIONFAILED]"):
			failed++
		case strings.HasPrefix(r, "NO [UNAVAILABLE]"):
			refused++
		default:
			t.Errorf("guess answered %q", r)
		}
	}
	if n := checked.Load(); n > limit || int(n) != failed {
		t.Errorf("%d passwords checked and %d failures answered for %d parallel guesses, want at most the limit %d", n, failed, guesses, limit)
	}
	if refused != guesses-failed {
		t.Errorf("%d guesses refused, want %d", refused, guesses-failed)
	}
	// The right password is refused only once the limit is reached by real failures.
	_, st := dialRaw(t, env, true).cmd(`LOGIN bob right`)
	if failed == limit {
		wantStatus(t, "right password after the limit", st, "NO [UNAVAILABLE] Too many failed logins")
	} else {
		wantStatus(t, "right password under the limit", st, "OK")
	}
}

// TestLoginFloodDoesNotStarve: 200 wrong guesses in flight from one address, for 40 users, while
// their password checks are held. A real login from another address must still be served (on
// main it queued behind the flood's checks for the hash workers), and the flood's guesses must
// be refused at once rather than queued.
func TestLoginFloodDoesNotStarve(t *testing.T) {
	const guesses, users, perIP = 200, 40, 20
	var checked atomic.Int32
	g := newGate()
	env := newEnv(t, func(c *Config) {
		c.LoginFailures, c.LoginFailuresPerIP, c.LoginWindow = 5, perIP, time.Hour
		c.MaxConnectionsPerIP = 2 * guesses
		c.beforeHash = func(user string) {
			if user != "alice" {
				checked.Add(1)
				g.wait()
			}
		}
	})
	t.Cleanup(g.open)
	env.addUser(t, "alice", "hers", 0)
	for i := range users {
		env.addUser(t, fmt.Sprintf("u%d", i), "secret", 0)
	}
	rs := replies(t, flood(env, guesses, "127.0.0.1", func(i int) string { return fmt.Sprintf("u%d", i%users) }), guesses)
	got := collect(t, rs, nil, guesses-perIP, 10*time.Second)

	alice := dialRawFrom(t, env, "127.0.0.2")
	alice.login("alice", "hers")
	alice.mustOK("SELECT INBOX")
	inFlight := checked.Load()
	g.open()
	got = collect(t, rs, got, guesses, time.Minute)
	if len(got) != guesses {
		t.Fatalf("%d of %d guesses answered", len(got), guesses)
	}
	refused := 0
	for _, r := range got {
		switch {
		case strings.HasPrefix(r, "NO [UNAVAILABLE]"):
			refused++
		case strings.HasPrefix(r, "NO [AUTHENTICATIONFAILED]"):
		default:
			t.Errorf("guess answered %q", r)
		}
	}
	// The flood holds at most its address's share of the hash workers; everything else it sent
	// was answered without waiting for them.
	if max := int32(env.srv.cfg.MaxConcurrentAuthPerIP); inFlight > max {
		t.Errorf("%d of the flood's guesses were being checked at once, want at most %d (MaxConcurrentAuthPerIP)", inFlight, max)
	}
	if n := checked.Load(); n > perIP {
		t.Errorf("%d of the flood's passwords checked, want at most the address's failure limit %d", n, perIP)
	}
	if refused < guesses-perIP {
		t.Errorf("%d of %d guesses refused, want at least %d", refused, guesses, guesses-perIP)
	}
}

// TestConnectionsPerAddress: one client address opens unauthenticated connections up to the
// default per-address cap (loopback gets no exception); the next is refused with BYE, while
// another address (127.0.0.2) is still served. On main one client could hold all 1,000 slots.
func TestConnectionsPerAddress(t *testing.T) {
	const perIP = 20
	env := newEnv(t, func(c *Config) { c.MaxConnections = 100 })
	if env.srv.cfg.MaxConnectionsPerIP != perIP {
		t.Fatalf("default MaxConnectionsPerIP %d, the test expects %d", env.srv.cfg.MaxConnectionsPerIP, perIP)
	}
	env.addUser(t, "bob", "pw", 0)
	for i := range perIP {
		dialRaw(t, env, i%2 == 0)
	}
	c, err := net.Dial("tcp", env.plain)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "* BYE Too many connections") {
		t.Errorf("connection %d from one address got %q, want a BYE", perIP+1, line)
	}
	other := dialRawFrom(t, env, "127.0.0.2")
	other.login("bob", "pw")
	other.mustOK("SELECT INBOX")
}

// TestLoginDeadline: a client that never logs in but sends NOOP every second is disconnected
// once the login timeout from its connect has passed (on main each NOOP reset a 30 s timeout,
// so it stayed forever); a client that logged in stays.
func TestLoginDeadline(t *testing.T) {
	const deadline = 3 * time.Second
	env := newEnv(t, func(c *Config) { c.LoginTimeout = deadline })
	env.addUser(t, "bob", "pw", 0)
	start := time.Now()
	in := dialRaw(t, env, true)
	in.login("bob", "pw")
	var wg sync.WaitGroup
	for _, useTLS := range []bool{false, true} {
		c := dialRaw(t, env, useTLS)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := noopUntilClosed(c, 10*deadline); err != nil {
				t.Errorf("TLS %v: %v", useTLS, err)
			} else if el := time.Since(start); el < deadline {
				t.Errorf("TLS %v: closed after %v, before the login timeout %v", useTLS, el, deadline)
			}
		}()
	}
	wg.Wait()
	in.mustOK("NOOP")
	in.mustOK("SELECT INBOX")
}

// noopUntilClosed sends NOOP every second until the server closes the connection, or reports an
// error once max has passed with the connection still open.
func noopUntilClosed(c *rawConn, max time.Duration) error {
	end := time.Now().Add(max)
	for i := 0; time.Now().Before(end); i++ {
		c.c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(c.c, "n%d NOOP\r\n", i); err != nil {
			return nil // closed while we wrote
		}
		for {
			l, err := c.r.ReadString('\n')
			if err != nil {
				return nil
			}
			if strings.HasPrefix(l, "* BYE") {
				continue
			}
			if strings.HasPrefix(l, fmt.Sprintf("n%d ", i)) {
				break
			}
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("still connected after %v of NOOPs", max)
}

// The per-address limits count an IPv6 client by its /64, which it can fill with addresses.
func TestAddrKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:993", "127.0.0.1"},
		{"[::ffff:192.0.2.7]:993", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:993", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::ffff]:143", "2001:db8:1:2::/64"},
	} {
		a, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := addrKey(a); got != tc.want {
			t.Errorf("addrKey(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// TestAuthQueueBound: with the hash workers busy and their queue full, a further login is
// refused at once instead of waiting.
func TestAuthQueueBound(t *testing.T) {
	const logins, workers, queue = 10, 1, 2
	var checked atomic.Int32
	g := newGate()
	env := newEnv(t, func(c *Config) {
		c.MaxConcurrentAuth, c.MaxAuthQueue = workers, queue
		c.MaxConcurrentAuthPerIP, c.MaxConcurrentAuthPerUser = 100, 100
		c.beforeHash = func(string) { checked.Add(1); g.wait() }
	})
	t.Cleanup(g.open)
	for i := range logins {
		env.addUser(t, fmt.Sprintf("u%d", i), "secret", 0) // an unknown user costs a full-price hash
	}
	rs := replies(t, flood(env, logins, "127.0.0.1", func(i int) string { return fmt.Sprintf("u%d", i) }), logins)
	got := collect(t, rs, nil, logins-workers-queue, 10*time.Second)
	for _, r := range got {
		wantStatus(t, "login beyond the queue", r, "NO [UNAVAILABLE] Too many logins in progress")
	}
	if len(got) != logins-workers-queue || checked.Load() > workers {
		t.Errorf("%d logins refused and %d being checked with %d workers and a queue of %d, want %d refused", len(got), checked.Load(), workers, queue, logins-workers-queue)
	}
	g.open()
	got = collect(t, rs, got, logins, time.Minute)
	if n := checked.Load(); len(got) != logins || n != workers+queue {
		t.Errorf("%d answered and %d checked in the end, want %d and %d", len(got), n, logins, workers+queue)
	}
}
