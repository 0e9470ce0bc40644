package testnet

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board/box"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// A handful of voters cast through the local mixnet to the ballot box on beta: every receipt
// verifies, a stranger is refused, the box survives SIGKILL, a re-vote replaces a ballot, the
// trustees close the election and the published board verifies.
func TestVoteThroughMixnet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binaries")
	}
	t.Parallel() // mostly waits for the end of its voting period: overlaps with the other vote test
	p := pki.DefaultParameters()
	p.EpochLength = 30 * time.Second
	p.MeanDelay = 10 * time.Millisecond
	p.MaxDelay = 100 * time.Millisecond
	p.LambdaP, p.LambdaL, p.LambdaD, p.LambdaM = 20, 1, 1, 2
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := launch(t, ctx, Options{Parameters: &p, LogLevel: "info", Vote: true})
	alpha, beta := n.Provider("alpha.localhost"), n.Provider("beta.localhost")
	boxDir := filepath.Join(beta.DataDir, "vote")
	boxKey, err := box.Key(boxDir) // created by the vote service at start
	if err != nil {
		t.Fatal(err)
	}
	boxPub := boxKey.Public()
	boxKey.Wipe()

	// The election: 4 voters, 3 trustees, threshold 2, open for 80 s from now.
	x, _ := group.RandomScalar(rand.Reader)
	opens := time.Now().Add(-time.Minute).Truncate(time.Second)
	closes := time.Now().Add(80 * time.Second).Truncate(time.Second)
	params := &board.Params{ElectionID: "mayor", PublicKey: verificatum.PublicKey{Y: new(group.Element).BaseExp(x)},
		Questions: []int{3, 2}, Threshold: 2, Opens: opens, Closes: closes, BoxKey: boxPub}
	copy(params.ElectionHash[:], "the mayor election's definition!")
	var voters, trustees []*keys.IdentityPrivateKey
	for range 4 {
		k, _ := keys.GenerateIdentityKey(nil)
		voters = append(voters, k)
		params.Voters = append(params.Voters, k.Public())
	}
	for range 3 {
		k, _ := keys.GenerateIdentityKey(nil)
		trustees = append(trustees, k)
		params.Trustees = append(params.Trustees, k.Public())
	}
	// The operator's and one voter's steps go through the real mixctl.
	work := t.TempDir()
	mixctl := func(args ...string) string {
		t.Helper()
		cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer ccancel()
		out, err := exec.CommandContext(cctx, filepath.Join(binDir, "mixctl"), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("mixctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	pb, err := params.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	paramsPath := filepath.Join(work, "params.bin")
	if err := os.WriteFile(paramsPath, pb, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := mixctl("vote", "open", paramsPath, "--box", boxDir); !strings.Contains(out, `election "mayor" open`) {
		t.Fatalf("vote open: %s", out)
	}

	pc, err := n.PKIClient()
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	pdone := make(chan struct{})
	go func() { defer close(pdone); pc.Run(rctx) }()
	defer func() { rcancel(); <-pdone }()
	retrieve := time.Duration(float64(time.Second) / (2 * (p.LambdaP + p.LambdaL)))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	engines := make([]*client.Engine, 5) // one per voter, and a stranger's
	edone := make([]chan error, len(engines))
	for i := range engines {
		name := fmt.Sprintf("voter%d", i)
		lk, err := n.AddUser(alpha, name, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		e, err := client.New(client.Config{DataDir: filepath.Join(t.TempDir(), name), User: name, Domain: alpha.Domain, LinkKey: lk, PKI: pc, Logger: log, RetrieveInterval: retrieve})
		if err != nil {
			t.Fatal(err)
		}
		engines[i], edone[i] = e, make(chan error, 1)
		go func() { edone[i] <- e.Run(rctx) }()
	}
	defer func() {
		rcancel()
		for i, e := range engines {
			<-edone[i]
			e.Close()
		}
	}()

	// cast sends one cast per engine at once and waits for each to finish.
	type result struct {
		cast []byte
		st   client.Status
	}
	castAll := func(casts map[int][]byte) map[int]result {
		t.Helper()
		ids := map[int]client.MessageID{}
		for i, c := range casts {
			id, err := engines[i].Send(context.Background(), client.Destination{Domain: beta.Domain, Recipient: "mayor", Service: "vote"}, c)
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = id
		}
		out := map[int]result{}
		deadline := time.Now().Add(2 * time.Minute)
		for len(out) < len(ids) {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d casts answered in time", len(out), len(ids))
			}
			for i, id := range ids {
				st, err := engines[i].Status(id)
				if err != nil {
					t.Fatal(err)
				}
				if st.State.Finished() {
					out[i] = result{casts[i], st}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		return out
	}
	receipt := func(r result) *board.Receipt {
		t.Helper()
		if r.st.State != client.StateDelivered {
			t.Fatalf("cast %s: %s", r.st.State, r.st.Reason)
		}
		rc, err := board.ParseReceipt(r.st.Answer)
		if err != nil {
			t.Fatal(err)
		}
		if err := rc.VerifyCast(params, r.cast); err != nil {
			t.Fatal(err)
		}
		return rc
	}
	newCast := func(k *keys.IdentityPrivateKey, choices ...int) []byte {
		c, err := board.NewCast(rand.Reader, params, k, choices)
		if err != nil {
			t.Fatal(err)
		}
		return c.Marshal()
	}

	stranger, _ := keys.GenerateIdentityKey(nil)
	first := castAll(map[int][]byte{0: newCast(voters[0], 0, 1), 1: newCast(voters[1], 1, 1), 2: newCast(voters[2], 2, 0),
		4: newCast(stranger, 0, 0)})
	receipts := map[int]*board.Receipt{}
	for i := range 3 {
		receipts[i] = receipt(first[i])
	}
	if st := first[4].st; st.State != client.StateFailed || !strings.Contains(st.Reason, "is not on the voter list") {
		t.Fatalf("stranger's cast: %s %q", st.State, st.Reason)
	}
	t.Logf("3 casts on the board, the stranger refused")

	// SIGKILL the box's provider and bring it back: the board is intact, casting goes on.
	if err := n.Kill(beta); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(beta); err != nil {
		t.Fatal(err)
	}
	second := castAll(map[int][]byte{0: newCast(voters[0], 2, 0)})
	revote := receipt(second[0])
	if revote.Seq != 3 {
		t.Fatalf("re-vote at entry %d, want 3", revote.Seq)
	}
	// Voter 3 votes with mixctl, as a user of alpha.
	lk, err := n.AddUser(alpha, "cli", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	linkPath, credPath, receiptPath := filepath.Join(work, "link.key"), filepath.Join(work, "voter3.key"), filepath.Join(work, "voter3.receipt")
	if err := keys.SaveLinkKey(linkPath, lk); err != nil {
		t.Fatal(err)
	}
	if err := keys.SaveIdentityKey(credPath, voters[3]); err != nil {
		t.Fatal(err)
	}
	castArgs := []string{"vote", "cast", "--params", paramsPath, "--choices", "0,0", "--credential", credPath, "--to", beta.Domain,
		"--directory", n.DirURL, "--authority", n.Authority.String(), "--epoch-length", p.EpochLength.String(),
		"--user", "cli", "--domain", alpha.Domain, "--link-key", linkPath, "--data-dir", filepath.Join(work, "cli"),
		"--receipt", receiptPath, "--timeout", "2m"}
	out := mixctl(castArgs...)
	if !strings.Contains(out, "as entry 4") {
		t.Fatalf("vote cast: %s", out)
	}
	// A run that got no receipt (here: it is removed, as if the run was killed before it
	// wrote it) is completed by the next run with the same --receipt: it sends the same cast
	// again and the box answers with the same receipt, no new entry (issue 15).
	if err := os.Remove(receiptPath); err != nil {
		t.Fatal(err)
	}
	if again := mixctl(castArgs...); !strings.Contains(again, "as entry 4") {
		t.Fatalf("vote cast after an interruption: %s", again)
	}

	// Two trustees close; the box appends the close after the voting period.
	closeArgs := []string{"vote", "close", "mayor", "--box", boxDir}
	for i := 1; i <= 2; i++ {
		s, err := board.SignClose(params, i, trustees[i-1])
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(work, fmt.Sprintf("close-%d.bt", i))
		if err := os.WriteFile(path, s.Marshal(), 0o644); err != nil {
			t.Fatal(err)
		}
		closeArgs = append(closeArgs, path)
	}
	if out := mixctl(closeArgs...); !strings.Contains(out, "handed to the ballot box") {
		t.Fatalf("vote close: %s", out)
	}
	var es []*board.Entry
	for deadline := closes.Add(30 * time.Second); ; {
		if es, err = box.ReadBoard(boxDir, "mayor"); err != nil {
			t.Fatal(err)
		}
		if len(es) > 0 && es[len(es)-1].Kind == board.KindClose {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no close entry 30 s after the end of the voting period (%d entries)", len(es))
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := board.VerifyBoard(params, es); err != nil {
		t.Fatal(err)
	}
	boardPath := filepath.Join(work, "board.bin")
	if out := mixctl("vote", "board", "mayor", "--box", boxDir, "--out", boardPath); !strings.Contains(out, "verified: 6 entries, closed") {
		t.Fatalf("vote board: %s", out)
	}
	if out := mixctl("vote", "receipt", receiptPath, "--params", paramsPath, "--board", boardPath); !strings.Contains(out, "entry 4 of the board (closed), and it is the one counted") {
		t.Fatalf("vote receipt: %s", out)
	}
	if len(es) != 6 {
		t.Fatalf("board of %d entries, want 5 casts and the close", len(es))
	}
	lists, err := board.InputLists(params, es)
	if err != nil || len(lists) != 2 || len(lists[0]) != 4 {
		t.Fatalf("input lists: %v (%d questions)", err, len(lists))
	}
	if later, err := receipts[0].OnBoard(es); err != nil || later != int64(revote.Seq) {
		t.Fatalf("voter 0's first receipt: replaced by %d (%v), want %d", later, err, revote.Seq)
	}
	for i := 1; i < 3; i++ {
		if later, err := receipts[i].OnBoard(es); err != nil || later != -1 {
			t.Fatalf("voter %d's receipt: %d, %v", i, later, err)
		}
	}
	// After the close the box refuses casts.
	late := castAll(map[int][]byte{3: newCast(voters[3], 1, 1)})
	if st := late[3].st; st.State != client.StateFailed || !strings.Contains(st.Reason, `election "mayor" is closed`) {
		t.Fatalf("cast after the close: %s %q", st.State, st.Reason)
	}
}
