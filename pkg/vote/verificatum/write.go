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

// MixerFiles are the names, relative to a proof directory and in name order, of the files
// that mixer l (1-based) adds to it with AppendMixing.
func MixerFiles(l int) []string {
	nn := fmt.Sprintf("%02d", l)
	return []string{
		"proofs/Ciphertexts" + nn + ".bt",
		"proofs/PermutationCommitment" + nn + ".bt",
		"proofs/PoSCommitment" + nn + ".bt",
		"proofs/PoSReply" + nn + ".bt",
	}
}

// CreateShuffleDir starts a "shuffling" directory that mixers then extend one after another
// with AppendMixing (§6.2): every file but the proofs, proofs/activethreshold 0 and no
// ShuffledCiphertexts.bt yet. It is complete for vmnv once at least thres mixers appended.
// dir must not exist yet.
func CreateShuffleDir(dir string, protInfo []byte, auxsid string, pk PublicKey, input []Ciphertext) error {
	if err := checkAuxSID(auxsid); err != nil {
		return err
	}
	if _, err := ParseProtInfo(protInfo); err != nil {
		return err
	}
	if len(input) == 0 || len(input) > MaxCiphertexts {
		return fmt.Errorf("verificatum: %d input ciphertexts, want 1 to %d", len(input), MaxCiphertexts)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("verificatum: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "proofs"), 0o755); err != nil {
		return fmt.Errorf("verificatum: %w", err)
	}
	files := []struct {
		name string
		b    []byte
	}{
		{"protInfo.xml", protInfo},
		{"version", []byte(Version)},
		{"type", []byte("shuffling")},
		{"auxsid", []byte(auxsid)},
		{"width", []byte("1")},
		{"FullPublicKey.bt", pk.Tree().Encode()},
		{"Ciphertexts.bt", ListTree(input).Encode()},
		{"proofs/activethreshold", []byte("0")},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.b, 0o644); err != nil {
			return fmt.Errorf("verificatum: %w", err)
		}
	}
	return nil
}

// AppendMixing adds mixer l's proof and output to a directory made by CreateShuffleDir that
// holds mixers 1..l-1: the files MixerFiles(l), then ShuffledCiphertexts.bt (its output) and
// proofs/activethreshold (l), each replaced by a rename so that a crash leaves either the
// old or the new file. The caller proved m on the list of mixer l-1 (Ciphertexts.bt for 1).
func AppendMixing(dir string, l int, m Mixing) error {
	if l < 1 || l > MaxMixers {
		return fmt.Errorf("verificatum: mixer %d, want 1 to %d", l, MaxMixers)
	}
	at, err := readASCII(filepath.Join(dir, "proofs", "activethreshold"))
	if err != nil {
		return fmt.Errorf("verificatum: %w", err)
	}
	if at != strconv.Itoa(l-1) {
		return fmt.Errorf("verificatum: %s holds %s mixers, mixer %d must follow mixer %d", dir, at, l, l-1)
	}
	out := ListTree(m.Output).Encode()
	names := MixerFiles(l)
	contents := [][]byte{
		out,
		ElementsTree(m.Proof.PermutationCommitment).Encode(),
		m.Proof.CommitmentTree().Encode(),
		m.Proof.ReplyTree().Encode(),
	}
	for i, name := range names {
		if err := os.WriteFile(filepath.Join(dir, name), contents[i], 0o644); err != nil {
			return fmt.Errorf("verificatum: %w", err)
		}
	}
	if err := replaceFile(filepath.Join(dir, "ShuffledCiphertexts.bt"), out); err != nil {
		return err
	}
	return replaceFile(filepath.Join(dir, "proofs", "activethreshold"), []byte(strconv.Itoa(l)))
}

// TruncateMixings removes from a directory made by CreateShuffleDir the files of every mixer
// after the first keep (keep >= 1), and sets ShuffledCiphertexts.bt and activethreshold back
// to mixer keep's: what a mixer that failed or was interrupted before it signed its files
// runs first, so that it can run again.
func TruncateMixings(dir string, keep int) error {
	if keep < 1 || keep > MaxMixers {
		return fmt.Errorf("verificatum: keep %d mixers, want 1 to %d", keep, MaxMixers)
	}
	for l := keep + 1; l <= MaxMixers; l++ {
		for _, name := range MixerFiles(l) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("verificatum: %w", err)
			}
		}
	}
	out, err := readLimited(filepath.Join(dir, MixerFiles(keep)[0]), MaxTreeFile)
	if err != nil {
		return fmt.Errorf("verificatum: %w", err)
	}
	if err := replaceFile(filepath.Join(dir, "ShuffledCiphertexts.bt"), out); err != nil {
		return err
	}
	return replaceFile(filepath.Join(dir, "proofs", "activethreshold"), []byte(strconv.Itoa(keep)))
}

func replaceFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("verificatum: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("verificatum: %w", err)
	}
	return nil
}
