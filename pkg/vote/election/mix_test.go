package election

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/ballot"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// encryptLists encrypts choices[q][i] for each question and returns the lists.
func (f *fixture) encryptLists(t testing.TB, choices [][]int) [][]verificatum.Ciphertext {
	t.Helper()
	out := make([][]verificatum.Ciphertext, len(choices))
	for q, cs := range choices {
		for _, c := range cs {
			b, err := ballot.Encrypt(rand.Reader, []byte("unit"), []byte("cred"), f.result.PublicKey, c)
			if err != nil {
				t.Fatal(err)
			}
			out[q] = append(out[q], b.Ciphertext)
		}
	}
	return out
}

// mixBad runs mixer position k like Mix, signed by the right trustee, but with the input
// and output lists of question 0 changed by cheat before the proof is written (the claimed
// input only matters for k = 1, which writes Ciphertexts.bt). It returns the outputs, so that
// honest mixers can follow.
func (f *fixture) mixBad(t testing.TB, record string, k int, in [][]verificatum.Ciphertext, cheat func(in []verificatum.Ciphertext) (claimedIn, shuffleIn []verificatum.Ciphertext, edit func(out []verificatum.Ciphertext))) [][]verificatum.Ciphertext {
	t.Helper()
	d := &f.sd.Definition
	if err := os.MkdirAll(MixDir(record), 0o755); err != nil {
		t.Fatal(err)
	}
	outs := make([][]verificatum.Ciphertext, len(in))
	for q, list := range in {
		claimed, shuffled, edit := list, list, func([]verificatum.Ciphertext) {}
		if q == 0 {
			claimed, shuffled, edit = cheat(list)
		}
		sess, err := session(f.sd, q)
		if err != nil {
			t.Fatal(err)
		}
		h, err := sess.Generators(len(shuffled))
		if err != nil {
			t.Fatal(err)
		}
		out, proof, err := sess.Shuffle(rand.Reader, h, f.result.PublicKey, shuffled)
		if err != nil {
			t.Fatal(err)
		}
		edit(out)
		qd := QuestionDir(record, q)
		if k == 1 {
			if err := verificatum.CreateShuffleDir(qd, ProtInfo(f.sd), AuxSID(q), f.result.PublicKey, claimed); err != nil {
				t.Fatal(err)
			}
		}
		if err := verificatum.AppendMixing(qd, k, verificatum.Mixing{Output: out, Proof: proof}); err != nil {
			t.Fatal(err)
		}
		outs[q] = out
	}
	digests, err := mixDigests(record, k, len(d.Questions))
	if err != nil {
		t.Fatal(err)
	}
	msg := sealMessage(kindMix, f.sd.Hash(), d.Mixers[k-1], mixPayload(k, digests), f.trustees[d.Mixers[k-1]-1])
	if err := writeNew(MixerFile(record, k), msg, 0o644); err != nil {
		t.Fatal(err)
	}
	return outs
}

// checkMixer1 runs the verifier's checks of the directories' common files and of mixer 1.
func (f *fixture) checkMixer1(record string, in [][]verificatum.Ciphertext) []error {
	if errs := verifyQuestionDirs(f.sd, f.result.PublicKey, in, 1, false, record); len(errs) > 0 {
		return errs
	}
	_, errs := verifyMixer(f.sd, f.result.PublicKey, 1, in, record, nil)
	return errs
}

func TestMixDecryptCount(t *testing.T) {
	f := newFixture(t, 1, 5, 3, []int{1, 3, 5})
	record := t.TempDir()
	f.keygen(t, record, nil)
	choices := [][]int{{0, 1, 2, 2, 1, 2, 0, 2, 9}, {0, 1, 1, 0, 1, 1, 1, 0, 1}}
	in := f.encryptLists(t, choices)
	lists := in
	for k := 1; k <= 3; k++ {
		signer := f.trustees[f.sd.Definition.Mixers[k-1]-1]
		out, err := Mix(rand.Reader, f.sd, f.result.PublicKey, k, lists, record, signer, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, errs := verifyMixer(f.sd, f.result.PublicKey, k, lists, record, nil)
		if len(errs) > 0 {
			t.Fatalf("mixer %d: %v", k, errs)
		}
		for q := range got {
			if msg := compareLists(got[q], out[q]); msg != "" {
				t.Fatalf("mixer %d question %d: %s", k, q, msg)
			}
		}
		lists = out
	}
	if _, err := Mix(rand.Reader, f.sd, f.result.PublicKey, 1, in, record, f.trustees[0], nil); err == nil {
		t.Fatal("mixer 1 overwrote its directory")
	}
	if err := os.MkdirAll(filepath.Join(record, DecryptDir), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, j := range []int{1, 2, 4} {
		msg, err := Decrypt(rand.Reader, f.sd, j, f.shares[j-1], lists, f.trustees[j-1], nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeNew(filepath.Join(record, DecryptDir, ShareName(j)), msg, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ms, warn, errs := verifyDecryption(record, f.sd, f.result, lists, nil)
	if len(errs) > 0 || len(warn) > 0 {
		t.Fatal(errs, warn)
	}
	tally, err := Count(f.sd, ms)
	if err != nil {
		t.Fatal(err)
	}
	if got := tally.Questions[0]; got.Counts[0] != 2 || got.Counts[1] != 2 || got.Counts[2] != 4 || got.Invalid != 1 {
		t.Fatalf("question 0: %+v", got)
	}
	if got := tally.Questions[1]; got.Counts[0] != 3 || got.Counts[1] != 6 || got.Invalid != 0 {
		t.Fatalf("question 1: %+v", got)
	}
	b, err := tally.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if again, err := ParseTally(b); err != nil || again.Questions[0].Counts[2] != 4 {
		t.Fatalf("tally round trip: %v", err)
	}

	// A trustee whose factors are wrong: with only t = 3 shares published, the decryption
	// cannot route around it, and the verifier names the trustee and the question.
	bad := filepath.Join(record, DecryptDir, ShareName(4))
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	wrong := f.shares[2] // trustee 3's key share, published as trustee 4's
	msg, err := Decrypt(rand.Reader, f.sd, 4, wrong, lists, f.trustees[3], nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeNew(bad, msg, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, errs = verifyDecryption(record, f.sd, f.result, lists, nil)
	if len(errs) != 4 || !strings.Contains(errs[0].Error(), "trustee 4, question 0: decryption share invalid") ||
		!strings.Contains(errs[2].Error(), "question 0: only 2 valid decryption shares, threshold 3") {
		t.Fatalf("wrong share: %v", errs)
	}
	// With a fourth, valid share published, the decryption routes around trustee 4 and
	// reports it as a warning.
	msg, err = Decrypt(rand.Reader, f.sd, 5, f.shares[4], lists, f.trustees[4], nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeNew(filepath.Join(record, DecryptDir, ShareName(5)), msg, 0o644); err != nil {
		t.Fatal(err)
	}
	ms, warn, errs = verifyDecryption(record, f.sd, f.result, lists, nil)
	if len(errs) != 0 || len(warn) != 2 || !strings.Contains(warn[0].Error(), "trustee 4, question 0: decryption share invalid") {
		t.Fatalf("routing around a wrong share: errors %v, warnings %v", errs, warn)
	}
	if again, err := Count(f.sd, ms); err != nil || again.Questions[0].Counts[2] != 4 {
		t.Fatalf("tally without trustee 4: %v", err)
	}
}

func TestMixerCheats(t *testing.T) {
	f := newFixture(t, 1, 3, 2, []int{1, 2})
	base := t.TempDir()
	f.keygen(t, base, nil)
	in := f.encryptLists(t, [][]int{{0, 1, 2, 0, 1, 2}, {0, 1, 0, 1, 0, 1}})
	other := f.encryptLists(t, [][]int{{2}, {}})[0][0]
	cases := []struct {
		name  string
		cheat func(in []verificatum.Ciphertext) ([]verificatum.Ciphertext, []verificatum.Ciphertext, func([]verificatum.Ciphertext))
		want  string
	}{
		{"drop", func(in []verificatum.Ciphertext) ([]verificatum.Ciphertext, []verificatum.Ciphertext, func([]verificatum.Ciphertext)) {
			return in[1:], in[1:], func([]verificatum.Ciphertext) {}
		}, "question 0's proof directory: Ciphertexts.bt is not the board's input list: 5 ciphertexts where 6 are expected"},
		{"duplicate", func(in []verificatum.Ciphertext) ([]verificatum.Ciphertext, []verificatum.Ciphertext, func([]verificatum.Ciphertext)) {
			dup := append([]verificatum.Ciphertext{in[0]}, in[:5]...)
			return dup, dup, func([]verificatum.Ciphertext) {}
		}, "question 0's proof directory: Ciphertexts.bt is not the board's input list: ciphertext 1 differs"},
		{"duplicate in output", func(in []verificatum.Ciphertext) ([]verificatum.Ciphertext, []verificatum.Ciphertext, func([]verificatum.Ciphertext)) {
			return in, in, func(out []verificatum.Ciphertext) { out[1] = out[0] }
		}, "mixer 1 (trustee 1), question 0: proof of shuffle invalid"},
		{"replace", func(in []verificatum.Ciphertext) ([]verificatum.Ciphertext, []verificatum.Ciphertext, func([]verificatum.Ciphertext)) {
			return in, in, func(out []verificatum.Ciphertext) { out[3] = other }
		}, "mixer 1 (trustee 1), question 0: proof of shuffle invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			record := t.TempDir()
			f.mixBad(t, record, 1, in, c.cheat)
			errs := f.checkMixer1(record, in)
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), c.want) {
				t.Fatalf("got %v, want %q", errs, c.want)
			}
		})
	}
	// A file changed after the mixer signed: named as such.
	record := t.TempDir()
	if _, err := Mix(rand.Reader, f.sd, f.result.PublicKey, 1, in, record, f.trustees[0], nil); err != nil {
		t.Fatal(err)
	}
	reply := filepath.Join(QuestionDir(record, 1), "proofs", "PoSReply01.bt")
	b, err := os.ReadFile(reply)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := os.WriteFile(reply, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if errs := f.checkMixer1(record, in); len(errs) != 1 || !strings.Contains(errs[0].Error(), "mixer-01.bt does not match its files") {
		t.Fatalf("edited directory: %v", errs)
	}
}

// TestMixerRunsAgainAfterInterruption: mixer 2 killed after it added its files to question 0's
// directory but before it signed runs again; its unsigned files are replaced and the chain
// verifies. A mixer that has signed cannot run again.
func TestMixerRunsAgainAfterInterruption(t *testing.T) {
	f := newFixture(t, 1, 3, 2, []int{1, 2})
	record := t.TempDir()
	f.keygen(t, record, nil)
	in := f.encryptLists(t, [][]int{{0, 1, 2, 0}, {1, 0, 1, 1}})
	out1, err := Mix(rand.Reader, f.sd, f.result.PublicKey, 1, in, record, f.trustees[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	// What an interrupted mixer 2 leaves: its proof of question 0, unsigned.
	sess, err := session(f.sd, 0)
	if err != nil {
		t.Fatal(err)
	}
	h, err := sess.Generators(len(out1[0]))
	if err != nil {
		t.Fatal(err)
	}
	o, proof, err := sess.Shuffle(rand.Reader, h, f.result.PublicKey, out1[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := verificatum.AppendMixing(QuestionDir(record, 0), 2, verificatum.Mixing{Output: o, Proof: proof}); err != nil {
		t.Fatal(err)
	}
	out2, err := Mix(rand.Reader, f.sd, f.result.PublicKey, 2, out1, record, f.trustees[1], nil)
	if err != nil {
		t.Fatalf("mixer 2 after an interruption: %v", err)
	}
	if errs := verifyQuestionDirs(f.sd, f.result.PublicKey, in, 2, true, record); len(errs) > 0 {
		t.Fatal(errs)
	}
	for k, l := range [][][]verificatum.Ciphertext{in, out1} {
		if _, errs := verifyMixer(f.sd, f.result.PublicKey, k+1, l, record, nil); len(errs) > 0 {
			t.Fatal(errs)
		}
	}
	if errs := verifyShuffled(f.sd, out2, record); len(errs) > 0 {
		t.Fatal(errs)
	}
	if _, err := Mix(rand.Reader, f.sd, f.result.PublicKey, 2, out1, record, f.trustees[1], nil); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("mixer 2 again after signing: %v", err)
	}
}
