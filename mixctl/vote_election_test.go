package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/vmnv"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/election"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// TestVoteElectionCommands runs an election through the official's, trustees' and
// verifier's commands: 3 trustees (threshold 2), 2 mixers, 6 voters. The ballot box is
// played in process with pkg/vote/board (its commands are in vote_box.go).
func TestVoteElectionCommands(t *testing.T) {
	runVoteElection(t, cliElection{trustees: 3, threshold: 2, mixers: []int{3, 1}, voters: 6, decrypters: []int{1, 3}, checks: true})
}

// cliElection is an election run through mixctl's commands by runVoteElection.
type cliElection struct {
	trustees, threshold int
	mixers              []int
	voters              int
	decrypters          []int // trustees that publish decryption shares (at least threshold)
	checks              bool  // the refusals and outputs specific to TestVoteElectionCommands
	vmn                 bool  // every trustee also decrypts in Verificatum's format
}

// runVoteElection runs the election and returns the record directory.
func runVoteElection(t *testing.T, cfg cliElection) string {
	dir := t.TempDir()
	record := filepath.Join(dir, "record")
	run := func(args ...string) string {
		t.Helper()
		code, out, errOut := mixctl(append([]string{"vote"}, args...)...)
		if code != 0 {
			t.Fatalf("vote %s: %s", strings.Join(args, " "), errOut)
		}
		return out
	}
	field := func(out, name string) string {
		for _, l := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(l, name+": "); ok {
				return v
			}
		}
		t.Fatalf("no %q in %q", name, out)
		return ""
	}
	official := field(run("keygen", "--out", filepath.Join(dir, "official.key")), "signing key")
	if code, _, errOut := mixctl("vote", "keygen", "--out", filepath.Join(dir, "official.key")); code != 1 || !strings.Contains(errOut, "exists") {
		t.Fatalf("keygen over a key: %s", errOut)
	}
	type trusteeJSON struct {
		Name       string `json:"name"`
		SigningKey string `json:"signing_key"`
		EncKey     string `json:"encryption_key"`
	}
	var trustees []trusteeJSON
	for i := 1; i <= cfg.trustees; i++ {
		out := run("keygen", "--trustee", "--out", filepath.Join(dir, fmt.Sprintf("t%d.key", i)))
		trustees = append(trustees, trusteeJSON{fmt.Sprintf("T%d", i), field(out, "signing key"), field(out, "encryption key")})
	}
	var voterKeys []*keys.IdentityPrivateKey
	var voters []string
	for i := range cfg.voters {
		p := filepath.Join(dir, fmt.Sprintf("v%d.key", i))
		voters = append(voters, field(run("keygen", "--out", p), "signing key"))
		k, err := keys.LoadIdentityKey(p)
		if err != nil {
			t.Fatal(err)
		}
		voterKeys = append(voterKeys, k)
	}
	box := field(run("keygen", "--out", filepath.Join(dir, "box.key")), "signing key")
	def := map[string]any{
		"version": 1, "id": "cli-test", "title": "CLI test",
		"questions": []map[string]any{{"text": "Pick", "choices": []string{"a", "b"}}},
		"voters":    voters, "trustees": trustees, "threshold": cfg.threshold, "mixers": cfg.mixers,
		"opens": "2026-01-01T00:00:00Z", "closes": "2026-01-02T00:00:00Z",
		"provider": "vote.example", "box_key": box,
	}
	db, _ := json.Marshal(def)
	os.WriteFile(filepath.Join(dir, "election.json"), db, 0o644)
	run("create", "--key", filepath.Join(dir, "official.key"), "--definition", filepath.Join(dir, "election.json"), "--record", record)
	if code, _, errOut := mixctl("vote", "create", "--key", filepath.Join(dir, "official.key"), "--definition", filepath.Join(dir, "election.json"), "--record", record); cfg.checks && (code != 1 || !strings.Contains(errOut, "exists")) {
		t.Fatalf("create over a record: %s", errOut)
	}

	tr := func(i int) []string {
		return []string{"--record", record, "--index", fmt.Sprint(i), "--key", filepath.Join(dir, fmt.Sprintf("t%d.key", i))}
	}
	state := func(i int) []string { return []string{"--state", filepath.Join(dir, fmt.Sprintf("state%d", i))} }
	for _, step := range []string{"deal", "complain", "answer", "finish"} {
		for i := 1; i <= cfg.trustees; i++ {
			args := append([]string{"trustee", step}, tr(i)...)
			if step != "complain" {
				args = append(args, state(i)...)
			}
			run(args...)
		}
	}
	if code, _, errOut := mixctl(append([]string{"vote", "trustee", "deal"}, append(tr(2), state(2)...)...)...); cfg.checks && code != 1 || !strings.Contains(errOut, "dealt already") {
		t.Fatalf("second dealing: %s", errOut)
	}
	if code, _, errOut := mixctl("vote", "trustee", "deal", "--record", record, "--index", "1", "--key", filepath.Join(dir, "t2.key"), "--state", filepath.Join(dir, "x")); cfg.checks && code != 1 || !strings.Contains(errOut, "not the signing key of trustee 1") {
		t.Fatalf("deal with another trustee's key: %s", errOut)
	}
	run("params", "--record", record)
	closers := make([]int, cfg.threshold)
	for i := range closers {
		closers[i] = i + 1
	}
	for _, i := range closers {
		run(append([]string{"close-sign", "--out", filepath.Join(dir, fmt.Sprintf("close%d", i))}, tr(i)...)...)
	}

	// The ballot box, in process.
	pb, _ := os.ReadFile(filepath.Join(record, election.ParamsFile))
	p, err := board.ParseParams(pb)
	if err != nil {
		t.Fatal(err)
	}
	var entries []*board.Entry
	boxKey, err := keys.LoadIdentityKey(filepath.Join(dir, "box.key"))
	if err != nil {
		t.Fatal(err)
	}
	add := func(kind board.Kind, at time.Time, payload []byte) {
		prev := board.Genesis(p)
		if len(entries) > 0 {
			prev = entries[len(entries)-1].Hash()
		}
		e, err := board.NewEntry(p, boxKey, uint64(len(entries)), prev, kind, at, payload)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	for i, v := range voterKeys {
		c, err := board.NewCast(rand.Reader, p, v, []int{i % 3 % 2})
		if err != nil {
			t.Fatal(err)
		}
		add(board.KindBallot, p.Opens.Add(time.Duration(i+1)*time.Second), c.Marshal())
	}
	var sigs []*board.CloseSignature
	for _, i := range closers {
		b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("close%d", i)))
		s, err := board.ParseCloseSignature(b)
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, s)
	}
	cl, err := board.NewClose(p, sigs)
	if err != nil {
		t.Fatal(err)
	}
	add(board.KindClose, p.Closes, cl.Marshal())
	os.WriteFile(filepath.Join(record, election.BoardFile), board.MarshalBoard(entries), 0o644)

	if cfg.checks {
		if code, _, errOut := mixctl(append([]string{"vote", "mix", "--position", "1"}, tr(1)...)...); code != 1 || !strings.Contains(errOut, "mixer 1 is trustee 3") {
			t.Fatalf("mix by the wrong trustee: %s", errOut)
		}
	}
	for k, i := range cfg.mixers {
		run(append([]string{"mix", "--position", fmt.Sprint(k + 1)}, tr(i)...)...)
	}
	for _, i := range cfg.decrypters {
		run(append(append([]string{"decrypt"}, tr(i)...), state(i)...)...)
	}
	out := run("tally", "--record", record)
	if cfg.checks && (!strings.Contains(out, "       4  a") || !strings.Contains(out, "       2  b")) {
		t.Fatalf("tally:\n%s", out)
	}
	if cfg.vmn {
		// Three rounds, each by every trustee after all finished the previous one.
		for round := 1; round <= 3; round++ {
			for i := 1; i <= cfg.trustees; i++ {
				out := run(append(append([]string{"vmn-decrypt"}, tr(i)...), state(i)...)...)
				if !strings.Contains(out, fmt.Sprintf("trustee %d: round %d", i, round)) {
					t.Fatalf("vmn-decrypt round %d, trustee %d: %s", round, i, out)
				}
			}
		}
	}
	if !cfg.checks {
		code, out, errOut := mixctl("vote", "verify", "--record", record, "--official", official)
		if code != 0 || !strings.Contains(out, "record verified") {
			t.Fatalf("verify:\n%s\n%s", out, errOut)
		}
		return record
	}
	code, out, errOut := mixctl("vote", "verify", "--record", record, "--official", official)
	// Without the decryption in Verificatum's format, the verifier says vmnv cannot check it.
	if code != 0 || !strings.Contains(out, "record verified: [6] ballots") || !strings.Contains(out, "warning: no decryption in Verificatum's format") {
		t.Fatalf("verify:\n%s\n%s", out, errOut)
	}
	// Progress on stderr: one line per step with the elapsed time.
	if !strings.Contains(errOut, "s] mixer 2 (trustee 1), question 0: proof of shuffle verified (6 ciphertexts)") ||
		!strings.Contains(errOut, "s] trustee 3: decryption shares checked") {
		t.Fatalf("verify progress:\n%s", errOut)
	}
	if code, _, errOut := mixctl("vote", "verify", "--record", record, "--official", box); code != 1 || !strings.Contains(errOut, "not by "+box) {
		t.Fatalf("verify with another official: %s", errOut)
	}
	// A record with a changed byte in mixer 2's output is refused, naming the mixer.
	f := filepath.Join(record, "mix", "q00", "proofs", "Ciphertexts02.bt")
	b, _ := os.ReadFile(f)
	b[len(b)-1] ^= 1
	os.WriteFile(f, b, 0o644)
	if code, _, errOut := mixctl("vote", "verify", "--record", record); code != 1 || !strings.Contains(errOut, "mixer 2 (trustee 1)") {
		t.Fatalf("verify of a changed output: %s", errOut)
	}
	return record
}

func TestVoteTrusteeIndexFromKey(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "record")
	keyOut := func(name string, trustee bool) (string, string) {
		args := []string{"vote", "keygen", "--out", filepath.Join(dir, name)}
		if trustee {
			args = append(args, "--trustee")
		}
		code, out, errOut := mixctl(args...)
		if code != 0 {
			t.Fatal(errOut)
		}
		var sk, ek string
		for _, l := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(l, "signing key: "); ok {
				sk = v
			}
			if v, ok := strings.CutPrefix(l, "encryption key: "); ok {
				ek = v
			}
		}
		return sk, ek
	}
	keyOut("o.key", false)
	box, _ := keyOut("b.key", false)
	v, _ := keyOut("v.key", false)
	var ts []map[string]string
	for i := 1; i <= 2; i++ {
		sk, ek := keyOut(fmt.Sprintf("t%d.key", i), true)
		ts = append(ts, map[string]string{"name": fmt.Sprint(i), "signing_key": sk, "encryption_key": ek})
	}
	def, _ := json.Marshal(map[string]any{
		"version": 1, "id": "idx", "title": "t", "questions": []map[string]any{{"text": "q", "choices": []string{"a", "b"}}},
		"voters": []string{v}, "trustees": ts, "threshold": 1, "mixers": []int{1},
		"opens": "2026-01-01T00:00:00Z", "closes": "2026-01-02T00:00:00Z", "provider": "p.example", "box_key": box,
	})
	os.WriteFile(filepath.Join(dir, "e.json"), def, 0o644)
	if code, _, errOut := mixctl("vote", "create", "--key", filepath.Join(dir, "o.key"), "--definition", filepath.Join(dir, "e.json"), "--record", record); code != 0 {
		t.Fatal(errOut)
	}
	if code, out, errOut := mixctl("vote", "trustee", "deal", "--record", record, "--key", filepath.Join(dir, "t2.key"), "--state", filepath.Join(dir, "s2")); code != 0 || !strings.Contains(out, "dealing-02.bt") {
		t.Fatalf("deal without --index: %s %s", out, errOut)
	}
	if code, _, errOut := mixctl("vote", "trustee", "deal", "--record", record, "--key", filepath.Join(dir, "o.key"), "--state", filepath.Join(dir, "s0")); code != 1 || !strings.Contains(errOut, "signing key of no trustee") {
		t.Fatalf("deal with the official's key: %s", errOut)
	}
	// A definition file with unknown fields is refused with the field's name.
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"version":1,"colour":"red"}`), 0o644)
	if code, _, errOut := mixctl("vote", "create", "--key", filepath.Join(dir, "o.key"), "--definition", filepath.Join(dir, "bad.json"), "--record", filepath.Join(dir, "r2")); code != 1 || !strings.Contains(errOut, "colour") {
		t.Fatalf("unknown field: %s", errOut)
	}
}

// TestVoteElectionVmnv is issue 15's acceptance: a whole election through mixctl (100
// ballots, 5 trustees, threshold 3, mixers 2, 4 and 5, then the decryption in Verificatum's
// format by every trustee) whose record Verificatum's own verifier accepts with `vmnv -mix`
// (the three shuffles and the decryption), and copies with one byte of a proof of shuffle,
// one decryption factor or one ciphertext between two mixers changed, which vmnv and
// `mixctl vote verify` refuse. Before, vmnv refused every directory of our records ("Active
// threshold is smaller than threshold!").
func TestVoteElectionVmnv(t *testing.T) {
	tool := vmnv.Find(t)
	record := runVoteElection(t, cliElection{trustees: 5, threshold: 3, mixers: []int{2, 4, 5}, voters: 100, decrypters: []int{1, 2, 4}, vmn: true})
	qd := election.QuestionDir(record, 0)
	protInfo := filepath.Join(qd, "protInfo.xml")
	tool.Accept(t, "mix", protInfo, qd)

	swap01 := func(b []byte, list bool) []byte {
		tr, err := bytetree.Parse(b, bytetree.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if list {
			l, err := verificatum.ListFromTree(tr)
			if err != nil {
				t.Fatal(err)
			}
			l[0], l[1] = l[1], l[0]
			return verificatum.ListTree(l).Encode()
		}
		es, err := verificatum.ElementsFromTree(tr)
		if err != nil {
			t.Fatal(err)
		}
		es[0], es[1] = es[1], es[0]
		return verificatum.ElementsTree(es).Encode()
	}
	for _, c := range []struct {
		name, file string
		edit       func(b []byte) []byte
	}{
		// The last byte of mixer 2's k_F, a scalar that stays below q.
		{"proof of shuffle", "proofs/PoSReply02.bt", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		// Trustee 3's factors 0 and 1 swapped: valid points, not u_i^(-x_3/Δ).
		{"decryption factor", "proofs/DecryptionFactors03.bt", func(b []byte) []byte { return swap01(b, false) }},
		// Mixer 1's output with ciphertexts 0 and 1 swapped: a valid list that mixer 1 did
		// not prove and mixer 2 did not shuffle.
		{"ciphertext between mixers", "proofs/Ciphertexts01.bt", func(b []byte) []byte { return swap01(b, true) }},
	} {
		path := filepath.Join(qd, filepath.FromSlash(c.file))
		old, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, c.edit(append([]byte(nil), old...)), 0o644); err != nil {
			t.Fatal(err)
		}
		tool.Refuse(t, "mix", protInfo, qd)
		if code, _, errOut := mixctl("vote", "verify", "--record", record); code != 1 {
			t.Fatalf("%s changed: mixctl vote verify accepted: %s", c.name, errOut)
		} else {
			t.Logf("%s changed: %s", c.name, strings.TrimSpace(errOut))
		}
		if err := os.WriteFile(path, old, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tool.Accept(t, "mix", protInfo, qd)
}
