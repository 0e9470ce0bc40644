package vote

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/service/servicetest"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board/box"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// updateSeeds rewrites testdata/deliver.json (only on purpose):
// go test ./mixd/internal/vote -run TestDeliverSeeds -update-seeds
var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/deliver.json")

const seedsFile = "testdata/deliver.json"

// seedKey is a fixed test key, so that the seeds' casts verify against seedParams.
func seedKey(tb testing.TB, b byte) *keys.IdentityPrivateKey {
	k, err := keys.NewIdentityPrivateKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// seedParams is the fixed election "mayor" the seeds are cast in: three voters (keys 10, 11,
// 12), three trustees, one question with three options, the election key from a fixed scalar.
// The box key is the box's own (a cast does not name it).
func seedParams(tb testing.TB, boxKey keys.IdentityPublicKey) *board.Params {
	x, err := group.RandomScalar(bytes.NewReader(bytes.Repeat([]byte{7}, 1024)))
	if err != nil {
		tb.Fatal(err)
	}
	p := &board.Params{ElectionID: "mayor", PublicKey: verificatum.PublicKey{Y: new(group.Element).BaseExp(x)},
		Questions: []int{3}, Threshold: 2, Opens: opens, Closes: closes, BoxKey: boxKey}
	copy(p.ElectionHash[:], "definition hash of the mayor vote")
	for i := range 3 {
		p.Voters = append(p.Voters, seedKey(tb, byte(10+i)).Public())
		p.Trustees = append(p.Trustees, seedKey(tb, byte(20+i)).Public())
	}
	return p
}

// seedBox is a running vote service on a fresh box with seedParams installed, its clock an
// hour into the voting period.
func seedBox(tb testing.TB) (*Service, *board.Params, string) {
	dir := tb.TempDir()
	k, err := box.Key(dir)
	if err != nil {
		tb.Fatal(err)
	}
	p := seedParams(tb, k.Public())
	k.Wipe()
	if err := box.Install(dir, p); err != nil {
		tb.Fatal(err)
	}
	svc, err := New(Config{Dir: dir, Geometry: sphinx.DefaultGeometry(), Now: func() time.Time { return opens.Add(time.Hour) }})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
	return svc, p, filepath.Join(dir, p.ElectionID, box.BoardFile)
}

func writeSeeds(t *testing.T) {
	p := seedParams(t, seedKey(t, 30).Public())
	g := sphinx.DefaultGeometry()
	frag := func(id byte, data []byte) string {
		frags, err := client.Split(client.MessageID{id}, data, client.FragmentCapacity(g))
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(frags[0].Marshal())
	}
	cast := func(voter *keys.IdentityPrivateKey, choice int) []byte {
		c, err := board.NewCast(rand.Reader, p, voter, []int{choice})
		if err != nil {
			t.Fatal(err)
		}
		return c.Marshal()
	}
	good := cast(seedKey(t, 10), 1)
	forged := bytes.Clone(cast(seedKey(t, 11), 2))
	forged[len(forged)-1] ^= 1
	seeds := []servicetest.DeliverSeed{
		{Name: "stored", Recipient: "mayor", Data: frag(1, good), Expect: "stored"},
		{Name: "second voter", Recipient: "mayor", Data: frag(2, cast(seedKey(t, 12), 0)), Expect: "stored"},
		{Name: "not on the voter list", Recipient: "mayor", Data: frag(3, cast(seedKey(t, 13), 0)), Expect: "refused"},
		{Name: "altered cast", Recipient: "mayor", Data: frag(4, forged), Expect: "refused"},
		{Name: "not a cast", Recipient: "mayor", Data: frag(5, []byte("not a cast")), Expect: "malformed"},
		{Name: "unknown election", Recipient: "council", Data: frag(6, good), Expect: "unknown_recipient"},
		{Name: "bad election id", Recipient: "Mayor!", Data: frag(7, good), Expect: "unknown_recipient"},
		{Name: "too large", Recipient: "mayor", Data: frag(8, make([]byte, board.MaxCastSize+1)), Expect: "too_large"},
		{Name: "too short to answer", Recipient: "mayor", Data: "0102", Expect: "none"},
	}
	seeds = append(seeds, servicetest.DeliverSeed{Name: "malformed fragment", Recipient: "mayor", Data: seeds[0].Data + "00", Expect: "malformed"})
	servicetest.WriteSeeds(t, seedsFile, seeds)
}

// deliverOnce hands data to the service and returns its answer: "none", or the ACK's status
// name. Whatever the bytes, the box answers at most once, for the message and fragment the
// bytes name, and fails only if the box itself fails.
func deliverOnce(tb testing.TB, svc *Service, recipient string, data []byte) (string, *client.Ack) {
	r := &replier{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := svc.Deliver(ctx, &service.Request{Recipient: recipient, Data: data}, r); err != nil {
		tb.Fatalf("Deliver failed: %v", err)
	}
	var a *client.Ack
	if r.data != nil {
		var err error
		if a, err = client.ParseAck(r.data); err != nil {
			tb.Fatalf("answer does not parse: %v", err)
		}
	}
	return servicetest.CheckAnswer(tb, data, a), a
}

func TestDeliverSeeds(t *testing.T) {
	if *updateSeeds {
		writeSeeds(t)
	}
	seeds := servicetest.LoadSeeds(t, seedsFile)
	if len(seeds) < 5 {
		t.Fatalf("%s has %d seeds", seedsFile, len(seeds))
	}
	svc, _, _ := seedBox(t)
	for _, s := range seeds {
		data, err := hex.DecodeString(s.Data)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if got, a := deliverOnce(t, svc, s.Recipient, data); got != s.Expect {
			t.Errorf("%s: answered %q, want %q", s.Name, got, s.Expect)
			if a != nil {
				t.Logf("%s: answer %q", s.Name, a.Answer)
			}
		}
	}
}

// FuzzDeliver: any payload a final hop delivers to the vote service, for any election id, gets
// at most one answer, for the fragment it names; the board changes only for an answer
// "stored", whose receipt then verifies for the cast the fragment carries.
func FuzzDeliver(f *testing.F) {
	for _, s := range servicetest.LoadSeeds(f, seedsFile) {
		data, err := hex.DecodeString(s.Data)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s.Recipient, data)
	}
	svc, p, boardPath := seedBox(f)
	boardBytes := func(t *testing.T) []byte {
		b, err := os.ReadFile(boardPath)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return b
	}
	f.Fuzz(func(t *testing.T, recipient string, data []byte) {
		before := boardBytes(t)
		got, a := deliverOnce(t, svc, recipient, data)
		if got != "stored" {
			if !bytes.Equal(boardBytes(t), before) {
				t.Fatalf("answered %q but the board changed", got)
			}
			return
		}
		fr, err := client.ParseFragment(data, client.FragmentCapacity(sphinx.DefaultGeometry()))
		if err != nil {
			t.Fatalf("stored a fragment that does not parse: %v", err)
		}
		r, err := board.ParseReceipt(a.Answer)
		if err != nil {
			t.Fatalf("receipt: %v", err)
		}
		if err := r.VerifyCast(p, fr.Data); err != nil {
			t.Fatalf("receipt does not verify for the cast: %v", err)
		}
	})
}
