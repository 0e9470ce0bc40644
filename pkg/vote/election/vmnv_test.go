package election

import (
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/panoramix-mixnet/panoramix/internal/vmnv"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// vmnDecryptAll runs the three rounds of the Verificatum-format decryption for every trustee,
// one round at a time for all of them as they would, then completes the directories.
func vmnDecryptAll(t *testing.T, e *election) {
	t.Helper()
	n := len(e.f.sd.Definition.Trustees)
	states := make([]string, n)
	for j := range states {
		states[j] = t.TempDir()
	}
	for round := 1; round <= 3; round++ {
		for j := 1; j <= n; j++ {
			msg, err := VmnDecryptStep(rand.Reader, e.f.sd, j, e.f.shares[j-1], e.lists, e.record, states[j-1])
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(msg, "round ") {
				t.Fatalf("trustee %d, round %d: %s", j, round, msg)
			}
		}
	}
	msg, err := VmnDecryptStep(rand.Reader, e.f.sd, 1, e.f.shares[0], e.lists, e.record, states[0])
	if err != nil || !strings.HasPrefix(msg, "done") {
		t.Fatalf("after round 3: %q %v", msg, err)
	}
	if err := FinishVmnDecryption(e.record, e.f.sd, e.lists, nil); err != nil {
		t.Fatal(err)
	}
}

// TestRecordAcceptedByVmnv hands the record of an election made by our code (5 trustees,
// threshold 3, mixers 2, 4 and 5, 100 ballots, then the decryption in Verificatum's format by
// the five trustees) to Verificatum's own verifier, as an election official would: `vmnv
// -mix` must accept each question's directory (the three mixers' proofs in order, the
// decryption factors' proofs, the plaintexts). Copies with one byte of a proof of shuffle, one
// ciphertext between two mixers or one decryption factor changed must be refused by our
// verifier of the directory and by the verifier of the record, and the last by vmnv
// (mixctl's TestVoteElectionVmnv has vmnv refuse all three). Before issue 15 vmnv
// refused every one of our directories ("Active threshold is smaller than threshold!").
func TestRecordAcceptedByVmnv(t *testing.T) {
	tool := vmnv.Find(t)
	e := buildElection(t, 100)
	vmnDecryptAll(t, e)
	res, err := Verify(e.record, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 0 {
		t.Fatalf("warnings: %v", res.Warnings)
	}
	protInfo := filepath.Join(t.TempDir(), "protInfo.xml")
	writeFile(t, protInfo, ProtInfo(e.f.sd))
	pi := ProtInfo(e.f.sd)
	for q := range e.f.sd.Definition.Questions {
		qd := QuestionDir(e.record, q)
		tool.Accept(t, "mix", protInfo, qd)
		if r, err := verificatum.VerifyDir(qd, pi); err != nil || len(r.Plaintexts) != 100 {
			t.Fatalf("question %d: our verifier: %v", q, err)
		}
	}

	swap01 := func(t *testing.T, b []byte, list bool) []byte {
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
	tampers := []struct {
		name string
		file string // in question 0's directory
		edit func(t *testing.T, b []byte) []byte
		vmnv bool // also ask vmnv (mixctl's TestVoteElectionVmnv asks it for every case)
	}{
		{"one byte of mixer 2's proof of shuffle", "proofs/PoSReply02.bt", func(t *testing.T, b []byte) []byte {
			b[len(b)-1] ^= 1 // the last byte of k_F, a scalar that stays below q
			return b
		}, false},
		// Mixer 1's output with ciphertexts 0 and 1 swapped: a valid list, not the one mixer
		// 1 proved nor the one mixer 2 shuffled.
		{"one ciphertext between mixers 1 and 2", "proofs/Ciphertexts01.bt", func(t *testing.T, b []byte) []byte { return swap01(t, b, true) }, false},
		// Trustee 2's factors 0 and 1 swapped: valid points, not u_i^(-x_2/Δ).
		{"one decryption factor of trustee 2", "proofs/DecryptionFactors02.bt", func(t *testing.T, b []byte) []byte { return swap01(t, b, false) }, true},
	}
	for _, tc := range tampers {
		t.Run(tc.name, func(t *testing.T) {
			qd := QuestionDir(e.record, 0)
			cp := filepath.Join(t.TempDir(), "q00")
			if out, err := exec.Command("cp", "-r", qd, cp).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			path := filepath.Join(cp, filepath.FromSlash(tc.file))
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, tc.edit(t, b))
			if tc.vmnv {
				tool.Refuse(t, "mix", protInfo, cp)
			}
			if _, err := verificatum.VerifyDir(cp, pi); !errors.Is(err, verificatum.ErrInvalid) {
				t.Fatalf("our verifier of the directory: %v", err)
			}
			// The record with the tampered file in place.
			orig := filepath.Join(qd, filepath.FromSlash(tc.file))
			old, err := os.ReadFile(orig)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, orig, tc.edit(t, append([]byte(nil), old...)))
			defer writeFile(t, orig, old)
			_, err = Verify(e.record, nil)
			if !errors.Is(err, ErrVerify) {
				t.Fatalf("our verifier of the record: %v", err)
			}
			t.Log(err)
		})
	}
}

// TestVmnDecryptNeverTwoRepliesForOneR: two replies k = r - x v/Δ to two challenges with one r
// reveal the key share x. An attacker who, after trustee 1 replied, changes trustee 2's
// commitment (so the challenge changes) and deletes trustee 1's reply gets no second reply
// when trustee 1 runs again: its r is gone from its state, and the step refuses.
func TestVmnDecryptNeverTwoRepliesForOneR(t *testing.T) {
	e := buildElection(t, 4)
	n := len(e.f.sd.Definition.Trustees)
	states := make([]string, n)
	for j := range states {
		states[j] = t.TempDir()
	}
	for round := 1; round <= 2; round++ {
		for j := 1; j <= n; j++ {
			if _, err := VmnDecryptStep(rand.Reader, e.f.sd, j, e.f.shares[j-1], e.lists, e.record, states[j-1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if msg, err := VmnDecryptStep(rand.Reader, e.f.sd, 1, e.f.shares[0], e.lists, e.record, states[0]); err != nil || !strings.HasPrefix(msg, "round 3") {
		t.Fatalf("trustee 1, round 3: %q %v", msg, err)
	}
	qd := QuestionDir(e.record, 0)
	c2 := filepath.Join(qd, "proofs", "DecrFactCommitment02.bt")
	c3, err := os.ReadFile(filepath.Join(qd, "proofs", "DecrFactCommitment03.bt"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, c2, c3)
	reply := filepath.Join(qd, "proofs", "DecrFactReply01.bt")
	if err := os.Remove(reply); err != nil {
		t.Fatal(err)
	}
	msg, err := VmnDecryptStep(rand.Reader, e.f.sd, 1, e.f.shares[0], e.lists, e.record, states[0])
	if err == nil || !strings.Contains(err.Error(), "commitments were made elsewhere") {
		t.Fatalf("rerun after its reply was deleted: %q %v", msg, err)
	}
	if exists(reply) {
		t.Fatal("a second reply was written")
	}
}
