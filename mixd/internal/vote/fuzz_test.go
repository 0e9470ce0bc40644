package vote

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
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

// deliverSeed is one delivered payload: the Recipient command's id, the fragment, and the
// answer expected (a name of expectNames, or "none" when the payload is too short to name a
// message).
type deliverSeed struct {
	Name      string `json:"name"`
	Recipient string `json:"recipient"`
	Data      string `json:"data"` // hex
	Expect    string `json:"expect"`
}

var expectNames = map[client.AckStatus]string{
	client.AckStored: "stored", client.AckUnknownRecipient: "unknown_recipient", client.AckOverQuota: "over_quota",
	client.AckMalformed: "malformed", client.AckTooLarge: "too_large", client.AckRefused: "refused",
}

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

func loadSeeds(tb testing.TB) []deliverSeed {
	b, err := os.ReadFile(seedsFile)
	if err != nil {
		tb.Fatal(err)
	}
	var seeds []deliverSeed
	if err := json.Unmarshal(b, &seeds); err != nil {
		tb.Fatalf("%s: %v", seedsFile, err)
	}
	return seeds
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
	seeds := []deliverSeed{
		{"stored", "mayor", frag(1, good), "stored"},
		{"second voter", "mayor", frag(2, cast(seedKey(t, 12), 0)), "stored"},
		{"not on the voter list", "mayor", frag(3, cast(seedKey(t, 13), 0)), "refused"},
		{"altered cast", "mayor", frag(4, forged), "refused"},
		{"not a cast", "mayor", frag(5, []byte("not a cast")), "malformed"},
		{"unknown election", "council", frag(6, good), "unknown_recipient"},
		{"bad election id", "Mayor!", frag(7, good), "unknown_recipient"},
		{"too large", "mayor", frag(8, make([]byte, board.MaxCastSize+1)), "too_large"},
		{"too short to answer", "mayor", "0102", "none"},
	}
	seeds = append(seeds, deliverSeed{"malformed fragment", "mayor", seeds[0].Data + "00", "malformed"})
	b, err := json.MarshalIndent(seeds, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(seedsFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seedsFile, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
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
	id, index, named := client.FragmentIDs(data)
	if r.data == nil {
		if named {
			tb.Fatal("no answer to a fragment that names its message")
		}
		return "none", nil
	}
	a, err := client.ParseAck(r.data)
	switch {
	case err != nil:
		tb.Fatalf("answer does not parse: %v", err)
	case !named:
		tb.Fatalf("answer %v to bytes that name no message", a.Status)
	case a.ID != id || a.Index != index:
		tb.Fatalf("answer for message %s fragment %d, want %s fragment %d", a.ID, a.Index, id, index)
	}
	return expectNames[a.Status], a
}

func TestDeliverSeeds(t *testing.T) {
	if *updateSeeds {
		writeSeeds(t)
	}
	seeds := loadSeeds(t)
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
	for _, s := range loadSeeds(f) {
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
