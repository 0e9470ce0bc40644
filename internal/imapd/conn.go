package imapd

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Connection slots (issue 13, finding 5): MaxConnections in all, MaxConnectionsPerIP per client
// address, and an unauthenticated connection has LoginTimeout from its accept to log in, however
// many commands it sends meanwhile. Over a limit, a connection is greeted with BYE (on the
// clear-text port; before a TLS handshake nothing can be said) and closed.

// limitListener bounds concurrent connections and counts them so Run can wait for them.
type limitListener struct {
	net.Listener
	s   *Server
	tls bool // a clear-text BYE cannot be sent before the handshake
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := addrKey(c.RemoteAddr())
		select {
		case l.s.connSem <- struct{}{}:
		default:
			l.refuse(c, "too many connections")
			continue
		}
		if !l.s.addConn(key) {
			<-l.s.connSem
			l.refuse(c, "too many connections from the address")
			continue
		}
		l.s.conns.Add(1)
		tc := &trackedConn{Conn: c, s: l.s, key: key}
		by := time.Now().Add(l.s.cfg.LoginTimeout)
		tc.loginBy.Store(by.UnixNano())
		c.SetDeadline(by)
		return tc, nil
	}
}

func (l *limitListener) refuse(c net.Conn, why string) {
	l.s.log.Warn("imap connection refused: "+why, "remote", c.RemoteAddr().String())
	// Not in the accept loop: a client that does not read must not hold up others.
	go func() {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if !l.tls {
			c.Write([]byte("* BYE Too many connections, try again later\r\n"))
		}
		c.Close()
	}()
}

// addrKey is the unit the per-address limits count: an IPv4 address, or an IPv6 address's /64,
// since one IPv6 client usually has a whole /64 to choose its addresses from.
func addrKey(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String()
	}
	ip := ap.Addr().Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

func (s *Server) addConn(key string) bool {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	if s.connsByIP[key] >= s.cfg.MaxConnectionsPerIP {
		return false
	}
	s.connsByIP[key]++
	return true
}

func (s *Server) removeConn(key string) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	if s.connsByIP[key]--; s.connsByIP[key] <= 0 {
		delete(s.connsByIP, key)
	}
}

// trackedConn gives its slots back on Close and holds an unauthenticated connection to its
// login deadline: imapserver sets a fresh read deadline before each command, and a fresh write
// deadline for each response, so every deadline set before login is cut to loginBy. TLS
// (implicit or after STARTTLS) sets its deadlines on this connection too.
type trackedConn struct {
	net.Conn
	s       *Server
	key     string
	once    sync.Once
	loginBy atomic.Int64 // the login deadline in Unix nanoseconds; 0 once logged in
}

func (c *trackedConn) cut(t time.Time) time.Time {
	if by := c.loginBy.Load(); by != 0 {
		if d := time.Unix(0, by); t.IsZero() || t.After(d) {
			return d
		}
	}
	return t
}

func (c *trackedConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.cut(t)) }
func (c *trackedConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.cut(t)) }
func (c *trackedConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.cut(t)) }

// loggedIn lifts the login deadline; imapserver sets the next deadlines itself.
func (c *trackedConn) loggedIn() { c.loginBy.Store(0) }

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.removeConn(c.key)
		<-c.s.connSem
		c.s.conns.Done()
	})
	return err
}
