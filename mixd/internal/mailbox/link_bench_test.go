package mailbox

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/provider"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// BenchmarkLinkDeliver measures holding one mail for a user who reads through the link: seal
// to the user's link key, cut into chunks of the default geometry's frame body, and queue them
// in one durable (fsync'd) transaction with the id check. The client does not fetch, so the
// queue grows as it would while a client is away.
func BenchmarkLinkDeliver(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			st, err := mailstore.Open(filepath.Join(b.TempDir(), "mail.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			ps, err := provider.OpenStore(filepath.Join(b.TempDir(), "provider.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer ps.Close()
			k, _ := keys.GenerateLinkKey(rand.Reader)
			if err := ps.AddUser(provider.User{Name: "bob", LinkKey: k.Public()}); err != nil {
				b.Fatal(err)
			}
			if err := ps.SetReadsViaLink("bob", true); err != nil {
				b.Fatal(err)
			}
			lb, err := NewLinkBackend(LinkConfig{Store: ps, ChunkSize: sphinx.DefaultGeometry().PacketSize(), Next: NewStoreBackend(st)})
			if err != nil {
				b.Fatal(err)
			}
			msg := make([]byte, size)
			rand.Read(msg)
			var id [16]byte
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := range b.N {
				binary.BigEndian.PutUint64(id[:], uint64(i))
				if err := lb.DeliverOnce(b.Context(), "bob", id[:], msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
