package testnet

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board/box"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/election"
)

// The election of issue 8's acceptance, through the real binaries: 100 voters, each with its
// own client engine and user account at alpha, cast through the local mixnet to the ballot box
// on beta; five trustees (threshold 3) generate the key with mixctl, three of them mix, three
// others' decryption shares decrypt; the tally equals what the voters chose and `mixctl vote
// verify` passes on the published record.
func TestElectionThroughMixnet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binaries")
	}
	t.Parallel() // mostly waits for the end of its voting period: overlaps with the other vote test
	const (
		nVoters   = 100
		nTrustees = 5
		threshold = 3
	)
	p := pki.DefaultParameters()
	p.EpochLength = 30 * time.Second
	p.MeanDelay = 10 * time.Millisecond
	p.MaxDelay = 100 * time.Millisecond
	// 100 engines share two cores with the network: each sends 2 packets/s.
	p.LambdaP, p.LambdaL, p.LambdaD, p.LambdaM = 2, 0.2, 0.2, 2
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n := launch(t, ctx, Options{Parameters: &p, LogLevel: "info", Vote: true})
	alpha, beta := n.Provider("alpha.localhost"), n.Provider("beta.localhost")
	boxDir := filepath.Join(beta.DataDir, "vote")
	work := t.TempDir()
	record := filepath.Join(work, "record")
	mixctl := func(args ...string) string {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Minute)
		defer ccancel()
		var stderr strings.Builder
		cmd := exec.CommandContext(cctx, filepath.Join(binDir, "mixctl"), args...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("mixctl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
	field := func(out, name string) string {
		t.Helper()
		for _, l := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(l, name+": "); ok {
				return v
			}
		}
		t.Fatalf("no %q in %q", name, out)
		return ""
	}

	// Keys: the official and the trustees with mixctl, the voters' credentials in process.
	officialKey := filepath.Join(work, "official.key")
	official := field(mixctl("vote", "keygen", "--out", officialKey), "signing key")
	type trusteeJSON struct {
		Name       string `json:"name"`
		SigningKey string `json:"signing_key"`
		EncKey     string `json:"encryption_key"`
	}
	var trustees []trusteeJSON
	tkey := func(i int) string { return filepath.Join(work, fmt.Sprintf("trustee%d.key", i)) }
	for i := 1; i <= nTrustees; i++ {
		out := mixctl("vote", "keygen", "--trustee", "--out", tkey(i))
		trustees = append(trustees, trusteeJSON{fmt.Sprintf("Trustee %d", i), field(out, "signing key"), field(out, "encryption key")})
	}
	voters := make([]*keys.IdentityPrivateKey, nVoters)
	var voterList []string
	for i := range voters {
		var err error
		if voters[i], err = keys.GenerateIdentityKey(nil); err != nil {
			t.Fatal(err)
		}
		voterList = append(voterList, voters[i].Public().String())
	}
	boxKey := strings.TrimSpace(mixctl("vote", "box-key", "--box", boxDir))

	// The definition: two questions, mixers trustees 2, 4 and 5 in that order. The voting
	// period leaves 100 casts through the mixnet ample time on a loaded machine.
	opens := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	closes := time.Now().Add(90 * time.Second).UTC().Truncate(time.Second)
	questions := []map[string]any{
		{"text": "Mayor", "choices": []string{"Ada", "Grace", "Barbara"}},
		{"text": "Build the bridge?", "choices": []string{"yes", "no"}},
	}
	def, err := json.Marshal(map[string]any{
		"version": 1, "id": "town", "title": "Town election",
		"questions": questions, "voters": voterList, "trustees": trustees, "threshold": threshold,
		"mixers": []int{2, 4, 5}, "opens": opens.Format(time.RFC3339), "closes": closes.Format(time.RFC3339),
		"provider": beta.Domain, "box_key": boxKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	defPath := filepath.Join(work, "election.json")
	if err := os.WriteFile(defPath, def, 0o644); err != nil {
		t.Fatal(err)
	}
	mixctl("vote", "create", "--key", officialKey, "--definition", defPath, "--record", record)
	tr := func(i int) []string {
		return []string{"--record", record, "--index", fmt.Sprint(i), "--key", tkey(i)}
	}
	state := func(i int) []string { return []string{"--state", filepath.Join(work, fmt.Sprintf("state%d", i))} }
	for _, step := range []string{"deal", "complain", "answer", "finish"} {
		for i := 1; i <= nTrustees; i++ {
			args := append([]string{"vote", "trustee", step}, tr(i)...)
			if step != "complain" {
				args = append(args, state(i)...)
			}
			mixctl(args...)
		}
	}
	mixctl("vote", "params", "--record", record)
	paramsPath := filepath.Join(record, election.ParamsFile)
	if out := mixctl("vote", "open", paramsPath, "--box", boxDir); !strings.Contains(out, `election "town" open`) {
		t.Fatalf("vote open: %s", out)
	}
	pb, err := os.ReadFile(paramsPath)
	if err != nil {
		t.Fatal(err)
	}
	params, err := board.ParseParams(pb)
	if err != nil {
		t.Fatal(err)
	}

	// 100 voters, one client engine each, cast at once through the mixnet.
	pc, err := n.PKIClient()
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { pc.Run(rctx) })
	retrieve := time.Duration(float64(time.Second) / (2 * (p.LambdaP + p.LambdaL)))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	engines := make([]*client.Engine, nVoters)
	for i := range engines {
		name := fmt.Sprintf("voter%d", i)
		lk, err := n.AddUser(alpha, name, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		e, err := client.New(client.Config{DataDir: filepath.Join(work, "engines", name), User: name, Domain: alpha.Domain, LinkKey: lk, PKI: pc, Logger: log, RetrieveInterval: retrieve})
		if err != nil {
			t.Fatal(err)
		}
		engines[i] = e
		wg.Go(func() { e.Run(rctx) })
	}
	defer func() {
		rcancel()
		wg.Wait()
		for _, e := range engines {
			e.Close()
		}
	}()
	want := [][]int{make([]int, 3), make([]int, 2)}
	casts := make([][]byte, nVoters)
	ids := make([]client.MessageID, nVoters)
	start := time.Now()
	for i, e := range engines {
		choices := []int{(i * 7) % 3, i % 2}
		if i%5 == 0 {
			choices[0] = 1 // Grace leads
		}
		want[0][choices[0]]++
		want[1][choices[1]]++
		c, err := board.NewCast(rand.Reader, params, voters[i], choices)
		if err != nil {
			t.Fatal(err)
		}
		casts[i] = c.Marshal()
		if ids[i], err = e.Send(ctx, client.Destination{Domain: beta.Domain, Recipient: "town", Service: "vote"}, casts[i]); err != nil {
			t.Fatal(err)
		}
	}
	receipts := make([]*board.Receipt, nVoters)
	for done := 0; done < nVoters; {
		if time.Now().After(closes) {
			t.Fatalf("%d of %d casts acknowledged before the end of the voting period", done, nVoters)
		}
		done = 0
		for i, e := range engines {
			if receipts[i] != nil {
				done++
				continue
			}
			st, err := e.Status(ids[i])
			if err != nil {
				t.Fatal(err)
			}
			switch st.State {
			case client.StateFailed:
				t.Fatalf("voter %d's cast refused: %s", i, st.Reason)
			case client.StateDelivered:
				rc, err := board.ParseReceipt(st.Answer)
				if err != nil {
					t.Fatal(err)
				}
				if err := rc.VerifyCast(params, casts[i]); err != nil {
					t.Fatalf("voter %d's receipt: %v", i, err)
				}
				receipts[i] = rc
				done++
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d casts through the mixnet, every receipt verified, in %v", nVoters, time.Since(start).Round(time.Millisecond))

	// Three trustees agree to close; the box appends the close entry after the voting period.
	closeArgs := []string{"vote", "close", "town", "--box", boxDir}
	for _, i := range []int{1, 3, 5} {
		out := filepath.Join(work, fmt.Sprintf("close-%d", i))
		mixctl(append([]string{"vote", "close-sign", "--out", out}, tr(i)...)...)
		closeArgs = append(closeArgs, out)
	}
	mixctl(closeArgs...)
	for {
		es, err := box.ReadBoard(boxDir, "town")
		if err != nil {
			t.Fatal(err)
		}
		if len(es) > 0 && es[len(es)-1].Kind == board.KindClose {
			break
		}
		if time.Now().After(closes.Add(time.Minute)) {
			t.Fatalf("no close entry a minute after the end of the voting period (%d entries)", len(es))
		}
		time.Sleep(500 * time.Millisecond)
	}
	boardPath := filepath.Join(record, election.BoardFile)
	if out := mixctl("vote", "board", "town", "--box", boxDir, "--out", boardPath); !strings.Contains(out, fmt.Sprintf("verified: %d entries, closed", nVoters+1)) {
		t.Fatalf("vote board: %s", out)
	}
	// Every voter's receipt names the entry that is counted.
	receiptPath := filepath.Join(work, "receipt-7")
	if err := os.WriteFile(receiptPath, receipts[7].Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(receiptPath+".cast", casts[7], 0o644); err != nil { // mixctl vote receipt reads RECEIPT.cast
		t.Fatal(err)
	}
	if out := mixctl("vote", "receipt", receiptPath, "--params", paramsPath, "--board", boardPath); !strings.Contains(out, "it is the one counted") {
		t.Fatalf("vote receipt: %s", out)
	}

	// Mix by trustees 2, 4, 5; decrypt with the shares of trustees 1, 2 and 4 (3 of 5).
	for k, i := range []int{2, 4, 5} {
		mixctl(append([]string{"vote", "mix", "--position", fmt.Sprint(k + 1)}, tr(i)...)...)
	}
	for _, i := range []int{1, 2, 4} {
		mixctl(append(append([]string{"vote", "decrypt"}, tr(i)...), state(i)...)...)
	}
	mixctl("vote", "tally", "--record", record)
	tb, err := os.ReadFile(filepath.Join(record, election.TallyFile))
	if err != nil {
		t.Fatal(err)
	}
	tally, err := election.ParseTally(tb)
	if err != nil {
		t.Fatal(err)
	}
	for q, qt := range tally.Questions {
		if !slices.Equal(qt.Counts, want[q]) || qt.Invalid != 0 {
			t.Fatalf("question %d: counts %v (invalid %d), voters chose %v", q, qt.Counts, qt.Invalid, want[q])
		}
	}
	t.Logf("tally %v and %v, as cast", tally.Questions[0].Counts, tally.Questions[1].Counts)
	// The decryption in Verificatum's format, for vmnv -mix: three rounds by all five trustees.
	for round := 1; round <= 3; round++ {
		for i := 1; i <= 5; i++ {
			if out := mixctl(append(append([]string{"vote", "vmn-decrypt"}, tr(i)...), state(i)...)...); !strings.Contains(out, fmt.Sprintf("round %d", round)) {
				t.Fatalf("vote vmn-decrypt, trustee %d, round %d: %s", i, round, out)
			}
		}
	}
	if out := mixctl("vote", "verify", "--record", record, "--official", official); !strings.Contains(out, "record verified") || strings.Contains(out, "Verificatum") {
		t.Fatalf("vote verify: %s", out)
	}
}
