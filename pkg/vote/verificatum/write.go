package verificatum

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
)

// Mixing is the output and proof of one mixer, in order.
type Mixing struct {
	Output []Ciphertext
	Proof  *ShuffleProof
}

// WriteShuffleDir writes a proof directory of type "shuffling" in Verificatum's layout (§6), so
// that `vmnv -shuffle -auxsid AUXSID -width 1 protInfo.xml DIR` checks it. protInfo is copied
// to DIR/protInfo.xml unchanged; mixings are the mixers in order, the first one shuffling
// input. dir must not exist yet.
func WriteShuffleDir(dir string, protInfo []byte, auxsid string, pk PublicKey, input []Ciphertext, mixings []Mixing) error {
	if len(mixings) == 0 || len(mixings) > MaxMixers {
		return fmt.Errorf("verificatum: %d mixers, want 1 to %d", len(mixings), MaxMixers)
	}
	if err := checkAuxSID(auxsid); err != nil {
		return err
	}
	if _, err := ParseProtInfo(protInfo); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("verificatum: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "proofs"), 0o755); err != nil {
		return fmt.Errorf("verificatum: %w", err)
	}
	files := map[string][]byte{
		"protInfo.xml":           protInfo,
		"version":                []byte(Version),
		"type":                   []byte("shuffling"),
		"auxsid":                 []byte(auxsid),
		"width":                  []byte("1"),
		"FullPublicKey.bt":       pk.Tree().Encode(),
		"Ciphertexts.bt":         ListTree(input).Encode(),
		"ShuffledCiphertexts.bt": ListTree(mixings[len(mixings)-1].Output).Encode(),
		"proofs/activethreshold": []byte(strconv.Itoa(len(mixings))),
	}
	for i, m := range mixings {
		nn := fmt.Sprintf("%02d", i+1)
		files["proofs/PermutationCommitment"+nn+".bt"] = ElementsTree(m.Proof.PermutationCommitment).Encode()
		files["proofs/PoSCommitment"+nn+".bt"] = m.Proof.CommitmentTree().Encode()
		files["proofs/PoSReply"+nn+".bt"] = m.Proof.ReplyTree().Encode()
		if i < len(mixings)-1 {
			files["proofs/Ciphertexts"+nn+".bt"] = ListTree(m.Output).Encode()
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("verificatum: %w", err)
		}
	}
	return nil
}

// treeShape describes a tree's structure without its bytes: node child counts and leaf
// lengths. Two files of the same shape differ only in values.
func treeShape(t *bytetree.Tree) string {
	if t.IsLeaf() {
		return "l" + strconv.Itoa(t.Len())
	}
	s := "n" + strconv.Itoa(t.Len()) + "("
	prev, run := "", 0
	flush := func() {
		if run > 0 {
			s += strconv.Itoa(run) + "*" + prev + ","
		}
	}
	for _, c := range t.Children() {
		cs := treeShape(c)
		if cs == prev {
			run++
			continue
		}
		flush()
		prev, run = cs, 1
	}
	flush()
	return s + ")"
}
