package mailbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/mailstore"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
)

func loadFragmentSeeds(t testing.TB) [][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "fragments.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var seeds [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatalf("testdata/fragments.txt:%d: %v", n, err)
		}
		seeds = append(seeds, b)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return seeds
}

func TestFragmentSeedsNotEmpty(t *testing.T) {
	seeds := loadFragmentSeeds(t)
	valid := 0
	for _, s := range seeds {
		if _, err := client.ParseFragment(s, testCapacity); err == nil {
			valid++
		}
	}
	if len(seeds) == 0 || valid == 0 || valid == len(seeds) {
		t.Fatalf("%d seeds, %d valid: want both valid and invalid ones", len(seeds), valid)
	}
}

// FuzzDeliver feeds arbitrary bytes to the service as a fragment. Whatever comes in, Deliver
// does not fail or panic, answers at most once, answers "stored" exactly for fragments that
// parse (and that re-encode to the same bytes), and "malformed" or nothing for the rest.
func FuzzDeliver(f *testing.F) {
	for _, s := range loadFragmentSeeds(f) {
		f.Add(s)
	}
	st, err := mailstore.Open(filepath.Join(f.TempDir(), "mail.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateUser("bob", 0); err != nil {
		f.Fatal(err)
	}
	s, err := New(Config{
		Path: filepath.Join(f.TempDir(), "mailbox.db"), Geometry: testGeometry, Backend: NewStoreBackend(st),
		MaxPending: 1 << 40, MaxUserPending: 1 << 40,
	})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &recorder{}
		if err := s.Deliver(context.Background(), &service.Request{Recipient: "bob", Data: data}, r); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		a := r.ack(t)
		frag, perr := client.ParseFragment(data, testCapacity)
		if perr != nil {
			if a != nil && a.Status != client.AckMalformed {
				t.Fatalf("unparsable fragment (%v) answered %v", perr, a.Status)
			}
			return
		}
		if !bytes.Equal(frag.Marshal(), data) {
			t.Fatal("a fragment that parses does not re-encode to the same bytes")
		}
		if a == nil || a.ID != frag.ID || a.Index != frag.Index {
			t.Fatalf("fragment %d of %s answered %+v", frag.Index, frag.ID, a)
		}
		// Random fragments may reuse an id with another count or length: that is malformed.
		if a.Status != client.AckStored && a.Status != client.AckMalformed {
			t.Fatalf("fragment answered %v", a.Status)
		}
	})
	if err := s.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		f.Fatal(err)
	}
}
