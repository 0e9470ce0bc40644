package mailbox

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
)

// floodUsers are the recipients of TestForgedFirstFragmentsDoNotBlockMail; newMailstore makes
// bob and tiny, the test adds the others.
var floodUsers = []string{"bob", "tiny", "carol", "dave"}

// forgedFirst is the first fragment of a message that will never be completed, claiming total
// bytes: what an anonymous sender needs to send to reserve a message's worth of quota.
func forgedFirst(t testing.TB, total int) []byte {
	count := (total + testCapacity - 1) / testCapacity
	f := client.Fragment{ID: newID(t), Index: 0, Count: uint16(count), TotalLength: uint32(total), Data: make([]byte, testCapacity)}
	return f.Marshal()
}

// TestForgedFirstFragmentsDoNotBlockMail is the attack of issue 13 finding 2: an anonymous
// sender sends 1,000 first fragments claiming the largest length the service accepts to every
// user, and never the rest. Then every user is sent a real message, whose fragments must all be
// acknowledged as stored and which must be delivered. Once with the default limits, and once
// with limits so small that the forged fragments' data alone fills them many times over.
func TestForgedFirstFragmentsDoNotBlockMail(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Config)
	}{
		{"default limits", func(*Config) {}},
		{"small limits", func(c *Config) {
			c.MaxPending = int64(200 * testCapacity)
			c.MaxUserPending = int64(64 * testCapacity)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newMailstore(t)
			for _, u := range floodUsers[2:] {
				if err := st.CreateUser(u, 0); err != nil {
					t.Fatal(err)
				}
			}
			cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st))
			tc.set(&cfg)
			s := newService(t, cfg)
			claim := int(min(int64(s.maxSize), s.maxUserPending))

			// The flood: 1,000 forged first fragments per user, sent by 16 senders at once.
			const perUser = 1000
			work := make(chan string)
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for range 16 {
				wg.Go(func() {
					for u := range work {
						r := &recorder{}
						if err := s.Deliver(context.Background(), &service.Request{Recipient: u, Data: forgedFirst(t, claim)}, r); err != nil {
							// A fragment the service has no room for is not acknowledged; the
							// flood goes on.
							select {
							case errs <- err:
							default:
							}
						}
					}
				})
			}
			for range perUser {
				for _, u := range floodUsers {
					work <- u
				}
			}
			close(work)
			wg.Wait()
			select {
			case err := <-errs:
				t.Logf("the flood was refused at least once: %v", err)
			default:
			}

			// Real mail to every user: every fragment is stored and the message delivered.
			want := map[string][]byte{}
			for _, u := range floodUsers {
				msg := testMessage(t, 3*testCapacity)
				if u == "tiny" {
					msg = testMessage(t, 500) // tiny's mailbox quota is 1000 bytes
				}
				want[u] = msg
				for i, f := range fragments(t, newID(t), msg) {
					r := &recorder{}
					if err := s.Deliver(context.Background(), &service.Request{Recipient: u, Data: f}, r); err != nil {
						t.Fatalf("real mail to %s, fragment %d: %v", u, i, err)
					}
					if a := r.ack(t); a == nil || a.Status != client.AckStored {
						t.Fatalf("real mail to %s, fragment %d: ack %+v, want stored", u, i, a)
					}
				}
			}
			stop := run(t, s)
			for _, u := range floodUsers {
				waitFor(t, "delivery to "+u, func() bool { return len(inbox(t, st, u)) == 1 })
			}
			stop()
			for _, u := range floodUsers {
				if got := inbox(t, st, u); !bytes.Equal(got[0], want[u]) {
					t.Fatalf("%s's message not intact", u)
				}
			}
		})
	}
}
