package proxy

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A web page cannot speak SMTP to mailproxy (docs/SECURITY.md, the local user and web page
// rows): the listener has no authentication, and a browser lets any page POST a text/plain body
// to a loopback port that is not on its list of blocked ports. The page controls the body but
// not the request line and header fields before it; each of those is an unknown or mangled
// command, and the SMTP server closes the connection at the fourth error, before the body's
// commands are read. The same body sent alone is served, which shows the test can fail.
func TestWebPageCannotSpeakSMTP(t *testing.T) {
	p := newTestProxy(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sln, err := net.Listen("unix", filepath.Join(t.TempDir(), "status.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, sln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	body := "EHLO page.example\r\nMAIL FROM:<alice@alpha.example>\r\nRCPT TO:<bob@beta.example>\r\nDATA\r\nFrom: alice@alpha.example\r\n\r\nsent by a web page\r\n.\r\nQUIT\r\n"
	// The fewest fields a browser sends with a cross-origin form POST; real ones send more.
	post := "POST / HTTP/1.1\r\nHost: " + ln.Addr().String() + "\r\nContent-Type: text/plain\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body

	for _, tc := range []struct {
		name     string
		send     string
		wantMail bool
	}{
		{"plain SMTP (control)", body, true},
		{"browser form POST", post, false},
	} {
		replies := converse(t, ln.Addr().String(), tc.send)
		gotMail := false
		for _, r := range replies {
			// 250 after MAIL FROM is "2.0.0 Roger, accepting mail from <...>".
			if strings.HasPrefix(r, "250 ") && strings.Contains(r, "alice@alpha.example") {
				gotMail = true
			}
		}
		if gotMail != tc.wantMail {
			t.Errorf("%s: MAIL FROM accepted = %v, want %v; replies:\n%s", tc.name, gotMail, tc.wantMail, strings.Join(replies, "\n"))
		}
		if !tc.wantMail && !strings.Contains(strings.Join(replies, "\n"), "Too many errors") {
			t.Errorf("%s: the server did not close the connection for errors; replies:\n%s", tc.name, strings.Join(replies, "\n"))
		}
	}
}

// converse writes all of send at once, as a browser does, and returns every reply line until
// the server closes the connection.
func converse(t *testing.T, addr, send string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte(send)); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "221 ") {
			break
		}
	}
	return lines
}
