package main

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board/box"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// The operator's commands on a box directory, and the voter's receipt check, without a
// mixnet: the board is written here the way the vote service writes it.
func TestVoteBoxCommands(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "vote")
	code, out, errOut := mixctl("vote", "box-key", "--box", dir)
	if code != 0 {
		t.Fatalf("box-key: %d %s", code, errOut)
	}
	boxPub, err := keys.ParseIdentityPublicKey(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, errOut := mixctl("vote", "box-key"); !strings.Contains(errOut, "--box is required") {
		t.Fatalf("box-key without --box: %q", errOut)
	}

	x, _ := group.RandomScalar(rand.Reader)
	opens := time.Now().Add(-time.Hour).Truncate(time.Second)
	p := &board.Params{ElectionID: "mayor", PublicKey: verificatum.PublicKey{Y: new(group.Element).BaseExp(x)},
		Questions: []int{2}, Threshold: 2, Opens: opens, Closes: opens.Add(2 * time.Hour), BoxKey: boxPub}
	var voters, trustees []*keys.IdentityPrivateKey
	for range 2 {
		k, _ := keys.GenerateIdentityKey(nil)
		voters = append(voters, k)
		p.Voters = append(p.Voters, k.Public())
	}
	for range 3 {
		k, _ := keys.GenerateIdentityKey(nil)
		trustees = append(trustees, k)
		p.Trustees = append(p.Trustees, k.Public())
	}
	pb, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	paramsPath := filepath.Join(tmp, "params.bin")
	os.WriteFile(paramsPath, pb, 0o644)
	if code, out, errOut := mixctl("vote", "open", paramsPath, "--box", dir); code != 0 || !strings.Contains(out, `election "mayor" open`) {
		t.Fatalf("open: %d %s %s", code, out, errOut)
	}

	// Two trustees agree to close.
	var sigPaths []string
	for i := 1; i <= 2; i++ {
		s, err := board.SignClose(p, i, trustees[i-1])
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(tmp, "close-"+string(rune('0'+i)))
		os.WriteFile(path, s.Marshal(), 0o644)
		sigPaths = append(sigPaths, path)
	}
	if code, _, errOut := mixctl("vote", "close", "mayor", sigPaths[0], "--box", dir); code == 0 || !strings.Contains(errOut, "threshold is 2") {
		t.Fatalf("close with one signature: %d %s", code, errOut)
	}
	if code, out, errOut := mixctl(append([]string{"vote", "close", "mayor", "--box", dir}, sigPaths...)...); code != 0 || !strings.Contains(out, "handed to the ballot box") {
		t.Fatalf("close: %d %s %s", code, out, errOut)
	}
	pending, err := box.PendingClose(dir, "mayor")
	if err != nil || pending == nil {
		t.Fatalf("no pending close: %v", err)
	}

	// The board, as the service writes it: a cast, a re-vote, the close.
	key, err := box.Key(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Wipe()
	b, err := box.OpenBoard(dir, p, key)
	if err != nil {
		t.Fatal(err)
	}
	var receipts []*board.Receipt
	var casts [][]byte
	for _, choice := range []int{0, 1} {
		c, err := board.NewCast(rand.Reader, p, voters[0], []int{choice})
		if err != nil {
			t.Fatal(err)
		}
		e, err := b.Stage(board.KindBallot, opens.Add(time.Minute), c.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		receipts = append(receipts, e.Receipt())
		casts = append(casts, c.Marshal())
	}
	if _, err := b.Stage(board.KindClose, p.Closes, pending.Marshal()); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()

	boardPath := filepath.Join(tmp, "board.bin")
	if code, out, errOut := mixctl("vote", "board", "mayor", "--box", dir, "--out", boardPath); code != 0 || !strings.Contains(out, "verified: 3 entries, closed") {
		t.Fatalf("board: %d %s %s", code, out, errOut)
	}
	for i, r := range receipts {
		rp := filepath.Join(tmp, "r"+string(rune('0'+i)))
		os.WriteFile(rp, r.Marshal(), 0o644)
		os.WriteFile(rp+".cast", casts[i], 0o644)
	}
	if code, out, errOut := mixctl("vote", "receipt", filepath.Join(tmp, "r0"), "--params", paramsPath, "--board", boardPath); code != 0 || !strings.Contains(out, "replaced by your later cast at entry 1") {
		t.Fatalf("receipt 0: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := mixctl("vote", "receipt", filepath.Join(tmp, "r1"), "--params", paramsPath, "--board", boardPath); code != 0 || !strings.Contains(out, "is the one counted") {
		t.Fatalf("receipt 1: %d %s %s", code, out, errOut)
	}
	// The receipt of one cast does not vouch for another.
	if code, _, errOut := mixctl("vote", "receipt", filepath.Join(tmp, "r0"), "--params", paramsPath, "--board", boardPath, "--cast", filepath.Join(tmp, "r1.cast")); code == 0 || !strings.Contains(errOut, "does not commit to this cast") {
		t.Fatalf("receipt with another cast: %d %s", code, errOut)
	}
	// A board altered after publication is caught, entry named.
	bb, _ := os.ReadFile(boardPath)
	bb[len(bb)-3] ^= 1
	os.WriteFile(boardPath, bb, 0o644)
	if code, _, errOut := mixctl("vote", "receipt", filepath.Join(tmp, "r1"), "--params", paramsPath, "--board", boardPath); code == 0 || !strings.Contains(errOut, "board entry 2: box signature invalid") {
		t.Fatalf("receipt against an altered board: %d %s", code, errOut)
	}
}
