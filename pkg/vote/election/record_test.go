package election

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// boardBuilder appends entries signed by the box key, as the ballot box does.
type boardBuilder struct {
	p       *board.Params
	box     *keys.IdentityPrivateKey
	entries []*board.Entry
	next    time.Time
}

func (b *boardBuilder) add(t testing.TB, kind board.Kind, payload []byte) {
	t.Helper()
	prev := board.Genesis(b.p)
	if n := len(b.entries); n > 0 {
		prev = b.entries[n-1].Hash()
	}
	e, err := board.NewEntry(b.p, b.box, uint64(len(b.entries)), prev, kind, b.next, payload)
	if err != nil {
		t.Fatal(err)
	}
	b.entries = append(b.entries, e)
	b.next = b.next.Add(time.Second)
}

func (b *boardBuilder) cast(t testing.TB, voter *keys.IdentityPrivateKey, choices []int) *board.Cast {
	t.Helper()
	c, err := board.NewCast(rand.Reader, b.p, voter, choices)
	if err != nil {
		t.Fatal(err)
	}
	b.add(t, board.KindBallot, c.Marshal())
	return c
}

func (b *boardBuilder) close(t testing.TB, f *fixture, signers ...int) {
	t.Helper()
	var sigs []*board.CloseSignature
	for _, i := range signers {
		s, err := board.SignClose(b.p, i, f.trustees[i-1])
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, s)
	}
	c, err := board.NewClose(b.p, sigs)
	if err != nil {
		t.Fatal(err)
	}
	b.next = b.p.Closes.Add(time.Minute)
	b.add(t, board.KindClose, c.Marshal())
}

// resign replaces a cast's signature by one of key over its current content.
func resign(t testing.TB, c *board.Cast, key *keys.IdentityPrivateKey) {
	t.Helper()
	tr, err := bytetree.Parse(c.Marshal(), bytetree.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	copy(c.Signature[:], key.Sign(tr.Children()[0].Encode()))
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// election is a complete record built in a temporary directory, with what went into it.
type election struct {
	f      *fixture
	record string
	params *board.Params
	pb     []byte // params.bin
	bb     *boardBuilder
	casts  []*board.Cast // the last cast of each voter
	lists  [][]verificatum.Ciphertext
	tally  *Tally
}

// buildElection runs an election in a temporary record: 5 trustees, threshold 3, mixers 2,
// 4 and 5, the given number of voters (every tenth re-votes), only t = 3 decryption shares
// published (trustees 1, 2, 4), so that a wrong one cannot be routed around. It checks the
// tally against the choices cast.
func buildElection(t testing.TB, voters int) *election {
	f := newFixture(t, voters, 5, 3, []int{2, 4, 5})
	record := t.TempDir()
	writeFile(t, filepath.Join(record, DefinitionFile), f.sd.Bytes())
	f.keygen(t, record, nil)
	params := BoxParams(f.sd, f.result)
	pb, err := params.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(record, ParamsFile), pb)
	if err := params.Validate(); err != nil {
		t.Fatal(err)
	}

	bb := &boardBuilder{p: params, box: f.box, next: params.Opens.Add(time.Minute)}
	want := [][]int{make([]int, 3), make([]int, 2)}
	var casts []*board.Cast
	for i, v := range f.voters {
		ch := []int{i % 3, (i / 3) % 2}
		if i%10 == 0 { // these voters change their mind: only the last cast counts
			bb.cast(t, v, []int{(i + 1) % 3, 1 - ch[1]})
		}
		casts = append(casts, bb.cast(t, v, ch))
		want[0][ch[0]]++
		want[1][ch[1]]++
	}
	bb.close(t, f, 1, 3, 5)
	writeFile(t, filepath.Join(record, BoardFile), board.MarshalBoard(bb.entries))

	lists, err := BoardInputs(record, f.sd, f.result)
	if err != nil {
		t.Fatal(err)
	}
	if len(lists[0]) != voters {
		t.Fatalf("%d input ballots, want %d", len(lists[0]), voters)
	}
	for k := 1; k <= 3; k++ {
		signer := f.trustees[f.sd.Definition.Mixers[k-1]-1]
		if lists, err = Mix(rand.Reader, f.sd, f.result.PublicKey, k, lists, record, signer, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range []int{1, 2, 4} {
		msg, err := Decrypt(rand.Reader, f.sd, j, f.shares[j-1], lists, f.trustees[j-1], nil)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(record, DecryptDir, ShareName(j)), msg)
	}
	tally, err := TallyRecord(record, nil)
	if err != nil {
		t.Fatal(err)
	}
	for q := range want {
		for c, n := range want[q] {
			if tally.Questions[q].Counts[c] != n {
				t.Fatalf("question %d: counts %v, want %v", q, tally.Questions[q].Counts, want[q])
			}
		}
	}
	tb, err := tally.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(record, TallyFile), tb)
	return &election{f: f, record: record, params: params, pb: pb, bb: bb, casts: casts, lists: lists, tally: tally}
}

// TestFullElection builds an election of 100 voters (buildElection checks its tally), checks
// that Verify passes, and that Verify names each kind of fraud.
func TestFullElection(t *testing.T) {
	const voters = 100
	e := buildElection(t, voters)
	f, record, params, pb, casts, lists, tally := e.f, e.record, e.params, e.pb, e.casts, e.lists, e.tally
	bb := e.bb
	var lines []string
	res, err := Verify(record, func(m string) { lines = append(lines, m) })
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if res.Ballots[0] != voters || len(lines) < 6 {
		t.Fatalf("result %v, progress %q", res.Ballots, lines)
	}

	// Each fraud below is put into the record, named by Verify, and undone.
	expect := func(name string, want ...string) {
		t.Helper()
		_, err := Verify(record, nil)
		if err == nil || !errors.Is(err, ErrVerify) {
			t.Errorf("%s: got %v", name, err)
			return
		}
		t.Logf("%s: %v", name, err)
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: got %v, want %q", name, err, w)
			}
		}
	}
	replace := func(path string, b []byte) (undo func()) {
		old, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, b)
		return func() { writeFile(t, path, old) }
	}
	rebuild := func(edit func(b *boardBuilder)) []byte {
		nb := &boardBuilder{p: params, box: f.box, next: params.Opens.Add(time.Minute)}
		edit(nb)
		nb.close(t, f, 1, 3, 5)
		return board.MarshalBoard(nb.entries)
	}
	boardPath := filepath.Join(record, BoardFile)

	// A tampered entry: entry 5 re-signed by the box with another time, so entry 6's link
	// no longer matches.
	tampered := append([]*board.Entry(nil), bb.entries...)
	e5, err := board.NewEntry(params, f.box, 5, tampered[4].Hash(), board.KindBallot, tampered[5].Time.Add(time.Millisecond), tampered[5].Payload)
	if err != nil {
		t.Fatal(err)
	}
	tampered[5] = e5
	undo := replace(boardPath, board.MarshalBoard(tampered))
	expect("tampered entry", "board entry 6")
	undo()

	// A copied ballot: voter 1's ballots cast again under voter 2's credential.
	undo = replace(boardPath, rebuild(func(nb *boardBuilder) {
		nb.cast(t, f.voters[0], []int{0, 0})
		c := nb.cast(t, f.voters[1], []int{1, 1})
		nb.entries = nb.entries[:1]
		c.Ballots = casts[0].Ballots
		resign(t, c, f.voters[1])
		nb.add(t, board.KindBallot, c.Marshal())
	}))
	expect("copied ballot", "board entry 1: ", "ballot 0 proof invalid for credential "+f.voters[1].Public().String()[:16]+"...: copied or altered ballot")
	undo()

	// A ballot from a credential that is not on the voter list.
	outsider := mustIdentity(t)
	undo = replace(boardPath, rebuild(func(nb *boardBuilder) {
		nb.cast(t, f.voters[0], []int{0, 0})
		nb.cast(t, outsider, []int{0, 0})
	}))
	expect("not eligible", "board entry 1: ", "credential "+outsider.Public().String()[:16]+"... is not on the voter list")
	undo()

	// A tally that is not the decryption.
	bad := *tally
	bad.Questions = append([]QuestionTally(nil), tally.Questions...)
	bad.Questions[1].Counts = []int{tally.Questions[1].Counts[1], tally.Questions[1].Counts[0]}
	bt, err := bad.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	undo = replace(filepath.Join(record, TallyFile), bt)
	expect("tally", "tally: the published tally differs from the recomputed one: question 1")
	undo()

	// Params that do not match the definition and key generation.
	undo = replace(filepath.Join(record, ParamsFile), append(pb[:len(pb)-1:len(pb)-1], pb[len(pb)-1]^1))
	expect("params", "params: params.bin differs")
	undo()

	// A wrong decryption share of trustee 4 (with trustee 3's key share).
	msg, err := Decrypt(rand.Reader, f.sd, 4, f.shares[2], lists, f.trustees[3], nil)
	if err != nil {
		t.Fatal(err)
	}
	undo = replace(filepath.Join(record, DecryptDir, ShareName(4)), msg)
	expect("decryption share", "trustee 4, question 0: decryption share invalid")
	undo()

	// Mixer 1 (trustee 2) drops, duplicates or replaces one ballot of question 0, and signs
	// what it wrote.
	inputs, err := BoardInputs(record, f.sd, f.result)
	if err != nil {
		t.Fatal(err)
	}
	other := f.encryptLists(t, [][]int{{1}})[0][0]
	honest := MixDir(record) + ".honest"
	if err := os.Rename(MixDir(record), honest); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		cheat func(in []verificatum.Ciphertext) ([]verificatum.Ciphertext, []verificatum.Ciphertext, func([]verificatum.Ciphertext))
		want  string
	}{
		{"mixer drops", func(in []verificatum.Ciphertext) ([]verificatum.Ciphertext, []verificatum.Ciphertext, func([]verificatum.Ciphertext)) {
			return in[:len(in)-1], in[:len(in)-1], func([]verificatum.Ciphertext) {}
		}, "question 0's proof directory: Ciphertexts.bt is not the board's input list: 99 ciphertexts where 100 are expected"},
		{"mixer duplicates", func(in []verificatum.Ciphertext) ([]verificatum.Ciphertext, []verificatum.Ciphertext, func([]verificatum.Ciphertext)) {
			return in, in, func(out []verificatum.Ciphertext) { out[7] = out[8] }
		}, "mixer 1 (trustee 2), question 0: proof of shuffle invalid"},
		{"mixer replaces", func(in []verificatum.Ciphertext) ([]verificatum.Ciphertext, []verificatum.Ciphertext, func([]verificatum.Ciphertext)) {
			return in, in, func(out []verificatum.Ciphertext) { out[7] = other }
		}, "mixer 1 (trustee 2), question 0: proof of shuffle invalid"},
	} {
		// The cheat's output goes on to the honest mixers 2 and 3, so the chain is complete.
		l := f.mixBad(t, record, 1, inputs, c.cheat)
		for k := 2; k <= 3; k++ {
			if l, err = Mix(rand.Reader, f.sd, f.result.PublicKey, k, l, record, f.trustees[f.sd.Definition.Mixers[k-1]-1], nil); err != nil {
				t.Fatal(err)
			}
		}
		expect(c.name, c.want)
		if err := os.RemoveAll(MixDir(record)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(honest, MixDir(record)); err != nil {
		t.Fatal(err)
	}

	if _, err := Verify(record, nil); err != nil {
		t.Fatalf("record after undoing every fraud: %v", err)
	}
}

// BenchmarkVerifyRecord times Verify on a complete record of 1000 voters, 2 questions, 3
// mixers and 3 decryption shares (building the record is not timed).
func BenchmarkVerifyRecord(b *testing.B) {
	e := buildElection(b, 1000)
	for b.Loop() {
		if _, err := Verify(e.record, nil); err != nil {
			b.Fatal(err)
		}
	}
}
