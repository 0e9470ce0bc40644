package election

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/internal/vmnv"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// TestRecordAcceptedByVmnv hands the proof directories of an election made by our code (5
// trustees, threshold 3, mixers 2, 4 and 5, 100 ballots) to Verificatum's own verifier, as an
// election official would: each question's directory holds the three mixers' proofs in
// order, and `vmnv -shuffle` must accept the whole chain. Then copies with one byte of a
// proof of shuffle changed, or one ciphertext between two mixers changed, must be refused by
// vmnv, by our verifier of the directory and by the verifier of the record.
func TestRecordAcceptedByVmnv(t *testing.T) {
	tool := vmnv.Find(t)
	e := buildElection(t, 100)
	protInfo := filepath.Join(t.TempDir(), "protInfo.xml")
	writeFile(t, protInfo, ProtInfo(e.f.sd))
	pi := ProtInfo(e.f.sd)
	for q := range e.f.sd.Definition.Questions {
		qd := QuestionDir(e.record, q)
		tool.Accept(t, "shuffle", protInfo, qd)
		if _, err := verificatum.VerifyDir(qd, pi); err != nil {
			t.Fatalf("question %d: our verifier: %v", q, err)
		}
	}

	tampers := []struct {
		name string
		file string // in question 0's directory
		edit func(t *testing.T, b []byte) []byte
	}{
		{"one byte of mixer 2's proof of shuffle", "proofs/PoSReply02.bt", func(t *testing.T, b []byte) []byte {
			b[len(b)-1] ^= 1 // the last byte of k_F, a scalar that stays below q
			return b
		}},
		{"one ciphertext between mixers 1 and 2", "proofs/Ciphertexts01.bt", func(t *testing.T, b []byte) []byte {
			// Mixer 1's output with ciphertexts 0 and 1 swapped: a valid list, not the one
			// mixer 1 proved nor the one mixer 2 shuffled.
			tr, err := bytetree.Parse(b, bytetree.DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			l, err := verificatum.ListFromTree(tr)
			if err != nil {
				t.Fatal(err)
			}
			l[0], l[1] = l[1], l[0]
			return verificatum.ListTree(l).Encode()
		}},
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
			tool.Refuse(t, "shuffle", protInfo, cp)
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
			if _, err := Verify(e.record, nil); !errors.Is(err, ErrVerify) {
				t.Fatalf("our verifier of the record: %v", err)
			}
		})
	}
}
