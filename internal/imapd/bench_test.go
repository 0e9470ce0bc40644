package imapd

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
)

// benchSize is a typical text mail with a few headers: most mail is a few KiB (the Sphinx geometry
// work in docs/ uses the same order of magnitude).
const benchSize = 4 << 10

func benchMessage(i int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: alice@alpha.example\r\nTo: bob@beta.example\r\nSubject: benchmark %d\r\nMessage-ID: <b%d@alpha.example>\r\n\r\n", i, i)
	for b.Len() < benchSize-2 {
		b.WriteString("lorem ipsum dolor sit amet, consectetur adipiscing elit\r\n")
	}
	return b.Bytes()[:benchSize]
}

func benchClient(b *testing.B, env *testEnv) *imapclient.Client {
	b.Helper()
	c, err := imapclient.DialTLS(env.tls, &imapclient.Options{TLSConfig: env.clientTLS()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if err := c.Login("bob", "pw").Wait(); err != nil {
		b.Fatal(err)
	}
	return c
}

func appendOne(c *imapclient.Client, msg []byte) error {
	cmd := c.Append(mailstore.Inbox, int64(len(msg)), nil)
	if _, err := cmd.Write(msg); err != nil {
		return err
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	_, err := cmd.Wait()
	return err
}

// BenchmarkIMAPAppend: one client appending 4 KiB messages over TLS; each APPEND is answered only
// after the store's fsync'd commit.
func BenchmarkIMAPAppend(b *testing.B) {
	env := newEnv(b, nil)
	env.addUser(b, "bob", "pw", 0)
	c := benchClient(b, env)
	msg := benchMessage(0)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for b.Loop() {
		if err := appendOne(c, msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkIMAPAppendParallel: four clients of one user appending at once.
func BenchmarkIMAPAppendParallel(b *testing.B) {
	env := newEnv(b, nil)
	env.addUser(b, "bob", "pw", 0)
	const clients = 4
	pool := make(chan *imapclient.Client, clients)
	for range clients {
		pool <- benchClient(b, env)
	}
	msg := benchMessage(0)
	b.SetBytes(int64(len(msg)))
	b.SetParallelism(clients) // goroutines = clients * GOMAXPROCS; they share the pool
	var n atomic.Int64
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := <-pool
			err := appendOne(c, msg)
			pool <- c
			if err != nil {
				b.Error(err)
				return
			}
			n.Add(1)
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "msgs/s")
}

const fetchMailboxSize = 500

func fetchEnv(b *testing.B) (*testEnv, *imapclient.Client) {
	env := newEnv(b, nil)
	env.addUser(b, "bob", "pw", 0)
	for i := range fetchMailboxSize {
		if _, err := env.store.Deliver("bob", mailstore.Inbox, benchMessage(i), nil, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	c := benchClient(b, env)
	if _, err := c.Select(mailstore.Inbox, nil).Wait(); err != nil {
		b.Fatal(err)
	}
	return env, c
}

// BenchmarkIMAPFetch: UID FETCH of one whole message (BODY.PEEK[]) per round trip, cycling
// through a mailbox of 500 messages.
func BenchmarkIMAPFetch(b *testing.B) {
	_, c := fetchEnv(b)
	opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
	b.SetBytes(benchSize)
	i := 0
	b.ResetTimer()
	for b.Loop() {
		uid := imap.UID(i%fetchMailboxSize + 1)
		msgs, err := c.Fetch(imap.UIDSetNum(uid), opts).Collect()
		if err != nil {
			b.Fatal(err)
		}
		if len(msgs) != 1 || len(msgs[0].BodySection) != 1 || len(msgs[0].BodySection[0].Bytes) != benchSize {
			b.Fatalf("FETCH of UID %d returned %d messages", uid, len(msgs))
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkIMAPFetchMailbox: one FETCH 1:* (UID FLAGS BODY.PEEK[]) of all 500 messages per
// operation, as a client does on first sync.
func BenchmarkIMAPFetchMailbox(b *testing.B) {
	_, c := fetchEnv(b)
	opts := &imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
	all := imap.SeqSet{{Start: 1, Stop: 0}}
	b.SetBytes(benchSize * fetchMailboxSize)
	b.ResetTimer()
	for b.Loop() {
		msgs, err := c.Fetch(all, opts).Collect()
		if err != nil {
			b.Fatal(err)
		}
		if len(msgs) != fetchMailboxSize {
			b.Fatalf("FETCH 1:* returned %d messages", len(msgs))
		}
	}
	b.ReportMetric(float64(b.N*fetchMailboxSize)/b.Elapsed().Seconds(), "msgs/s")
}
