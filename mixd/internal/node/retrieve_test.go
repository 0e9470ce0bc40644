package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/provider"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

// TestRetrieveBatch: a client link asking for 4 answers per retrieve gets exactly 4 frames each
// time, against a queue of 0, 2, 4 and 9 items, on both queues; every item comes once, in
// order, and the next retrieve's number acknowledges them all (docs/spec/wire.md section 7).
func TestRetrieveBatch(t *testing.T) {
	tn := newTestNet(t)
	alpha := tn.start("alpha", "provider", t.TempDir())
	bobKey, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st := alpha.Store()
	if err := st.AddUser(provider.User{Name: "bob", LinkKey: bobKey.Public()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := alpha.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := wire.Dial(ctx, wire.DialConfig{Geometry: tn.geo, Key: bobKey, Remote: alpha.LinkKey(), Addr: addr.String(), Transport: tn.mem})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const k = 4
	queues := []struct {
		cmd     wire.Command
		item    wire.Command
		enqueue func(n, round int) error
		length  func() (int, error)
	}{
		{wire.CmdRetrieve, wire.CmdMessage, func(n, round int) error {
			for i := range n {
				if err := st.Enqueue("bob", &provider.Item{Kind: provider.ItemMessage, Body: fmt.Appendf(nil, "%d.%d", round, i)}, 100); err != nil {
					return err
				}
			}
			return nil
		}, func() (int, error) { return st.QueueLen("bob") }},
		{wire.CmdRetrieveMail, wire.CmdMail, func(n, round int) error {
			if n == 0 {
				return nil
			}
			chunks := make([][]byte, n)
			for i := range chunks {
				chunks[i] = fmt.Appendf(nil, "%d.%d", round, i)
			}
			return st.EnqueueMail("bob", [16]byte{byte(round + 1)}, chunks, time.Hour)
		}, func() (int, error) { return st.MailQueueLen("bob") }},
	}
	for _, q := range queues {
		seq := uint32(0)
		for round, n := range []int{0, 2, 4, 9} {
			if err := q.enqueue(n, round); err != nil {
				t.Fatal(err)
			}
			var got []string
			for exchange := 0; ; exchange++ {
				fs, err := c.Retrieve(q.cmd, seq, k, 10*time.Second)
				if err != nil {
					t.Fatalf("%v round %d (%d items) exchange %d: %v", q.cmd, round, n, exchange, err)
				}
				if len(fs) != k {
					t.Fatalf("%v: %d answers, want %d", q.cmd, len(fs), k)
				}
				items := 0
				for _, f := range fs {
					if f.Cmd != q.item {
						continue
					}
					items++
					got = append(got, string(f.Body))
					seq = f.Seq + 1
				}
				if items == 0 {
					break
				}
				// What waits after the exchange's last item.
				if last := fs[items-1]; int(last.QueueHint) != n-len(got) {
					t.Fatalf("%v round %d: hint %d after %d of %d items", q.cmd, round, last.QueueHint, len(got), n)
				}
			}
			if len(got) != n {
				t.Fatalf("%v round %d: got %d items %q, want %d", q.cmd, round, len(got), got, n)
			}
			for i, b := range got {
				if want := fmt.Sprintf("%d.%d", round, i); b != want {
					t.Fatalf("%v round %d: item %d is %q, want %q (all: %q)", q.cmd, round, i, b, want, got)
				}
			}
			// The last retrieve's number acknowledged every item: a write deletes them.
			if err := st.Prune(); err != nil {
				t.Fatal(err)
			}
			if l, err := q.length(); err != nil || l != 0 {
				t.Fatalf("%v round %d: %d items still queued after all were acknowledged (%v)", q.cmd, round, l, err)
			}
		}
	}
	// Nothing beyond the answers asked for came: the link has nothing more to read.
	if f, err := c.ReadFrameTimeout(300 * time.Millisecond); err == nil {
		t.Fatalf("a frame beyond the answers: %v", f.Cmd)
	}
}
