package verificatum

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
)

// Limits on the files of a proof directory (§6).
const (
	// MaxSmallFile bounds the ASCII files (version, type, auxsid, width, activethreshold).
	MaxSmallFile = 256
	// MaxTreeFile bounds every .bt file: a list of MaxCiphertexts ciphertexts is
	// 10 + 2*(5 + 81*MaxCiphertexts) bytes, about 340 MB.
	MaxTreeFile = 10 + 2*(5+81*MaxCiphertexts)
	// MaxMixers bounds proofs/activethreshold (Verificatum's own party limit is 25).
	MaxMixers = 25
)

// readLimited reads a whole file, refusing one larger than max before reading it.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes exceeds the limit of %d", filepath.Base(path), st.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: exceeds the limit of %d bytes", filepath.Base(path), max)
	}
	return b, nil
}

func readTree(path string) (*bytetree.Tree, error) {
	b, err := readLimited(path, MaxTreeFile)
	if err != nil {
		return nil, err
	}
	lim := bytetree.DefaultLimits()
	lim.MaxBytes = MaxTreeFile
	t, err := bytetree.Parse(b, lim)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return t, nil
}

func readASCII(path string) (string, error) {
	b, err := readLimited(path, MaxSmallFile)
	if err != nil {
		return "", err
	}
	s := string(b)
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("%s: not printable ASCII", filepath.Base(path))
		}
	}
	return s, nil
}

// MixerResult is what VerifyDir found for one mixer.
type MixerResult struct {
	Index int   // 1-based party index, as in the file names
	Err   error // nil when the proof verified
}

// DirResult is the outcome of VerifyDir.
type DirResult struct {
	Type          string // "shuffling" or "mixing"
	AuxSID        string
	Ciphertexts   int
	Mixers        []MixerResult
	OutputMatches bool // for "shuffling": the last mixer's output equals ShuffledCiphertexts.bt
	// Plaintexts are, for "mixing", the decryption of the last mixer's output, equal to
	// Plaintexts.bt, when every proof of decryption factors verified.
	Plaintexts []*group.Element
}

// ErrInvalid is wrapped by VerifyDir's error when a directory is well formed but a proof fails.
var ErrInvalid = errors.New("verificatum: proof directory invalid")

// VerifyDir verifies the proofs of shuffle in a Verificatum proof directory as
// `vmnv -shuffle` / `vmnv -mix` do for their shuffling part (§6). protInfo is the protocol
// info file given to vmnv (usually DIR/protInfo.xml). It returns an error wrapping ErrInvalid
// naming each failing mixer and equation, or a format error.
//
// For a "mixing" directory it also verifies the threshold decryption of the last mixer's
// output as `vmnv -mix` does (§6.3): PolynomialInExponent.bt against FullPublicKey.bt, every
// party's proof of decryption factors, and Plaintexts.bt against the factors combined.
func VerifyDir(dir string, protInfo []byte) (*DirResult, error) {
	return VerifyDirProgress(dir, protInfo, nil)
}

// VerifyDirProgress is VerifyDir with a progress callback for progress bars: progress (when not
// nil) is called as in Session.Progress with mixer, the 1-based index of the mixer whose proof is
// being checked, and that proof's done and total work.
func VerifyDirProgress(dir string, protInfo []byte, progress func(mixer, done, total int)) (*DirResult, error) {
	pi, err := ParseProtInfo(protInfo)
	if err != nil {
		return nil, err
	}
	small := map[string]string{}
	for _, name := range []string{"version", "type", "auxsid", "width", "proofs/activethreshold"} {
		s, err := readASCII(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("verificatum: %w", err)
		}
		small[name] = s
	}
	switch {
	case small["version"] != pi.Version:
		return nil, fmt.Errorf("%w: version file %q, protInfo.xml says %q", ErrFormat, small["version"], pi.Version)
	case small["type"] != "shuffling" && small["type"] != "mixing":
		return nil, fmt.Errorf("%w: type %q, want shuffling or mixing", ErrUnsupported, small["type"])
	case small["width"] != strconv.Itoa(pi.Width):
		return nil, fmt.Errorf("%w: width %q", ErrUnsupported, small["width"])
	}
	k, err := strconv.Atoi(small["proofs/activethreshold"])
	if err != nil || k < 1 || k > MaxMixers || k > pi.NoPart {
		return nil, fmt.Errorf("%w: activethreshold %q", ErrFormat, small["proofs/activethreshold"])
	}
	// vmnv refuses fewer shuffles than the threshold before it reads a proof: with fewer
	// mixers than thres, fewer than thres colluding parties could undo the mixing.
	if k < pi.Thres {
		return nil, fmt.Errorf("%w: active threshold %d is smaller than the threshold %d of protInfo.xml", ErrInvalid, k, pi.Thres)
	}
	res := &DirResult{Type: small["type"], AuxSID: small["auxsid"]}
	sess, err := NewSession(pi, res.AuxSID)
	if err != nil {
		return nil, err
	}
	pkT, err := readTree(filepath.Join(dir, "FullPublicKey.bt"))
	if err != nil {
		return nil, fmt.Errorf("verificatum: %w", err)
	}
	pk, err := PublicKeyFromTree(pkT)
	if err != nil {
		return nil, fmt.Errorf("verificatum: FullPublicKey.bt: %w", err)
	}
	in, err := readList(filepath.Join(dir, "Ciphertexts.bt"))
	if err != nil {
		return nil, err
	}
	n := len(in)
	if n == 0 {
		return nil, fmt.Errorf("%w: Ciphertexts.bt is empty", ErrFormat)
	}
	res.Ciphertexts = n
	h, err := sess.Generators(n)
	if err != nil {
		return nil, err
	}
	var failures []string
	for l := 1; l <= k; l++ {
		nn := fmt.Sprintf("%02d", l)
		outPath := filepath.Join(dir, "proofs", "Ciphertexts"+nn+".bt")
		if _, err := os.Stat(outPath); errors.Is(err, fs.ErrNotExist) && l == k {
			outPath = filepath.Join(dir, "ShuffledCiphertexts.bt")
		}
		out, err := readList(outPath)
		if err != nil {
			return nil, err
		}
		if len(out) != n {
			return nil, fmt.Errorf("%w: mixer %s output has %d ciphertexts, input %d", ErrFormat, nn, len(out), n)
		}
		var trees [3]*bytetree.Tree
		for i, name := range []string{"PermutationCommitment", "PoSCommitment", "PoSReply"} {
			if trees[i], err = readTree(filepath.Join(dir, "proofs", name+nn+".bt")); err != nil {
				return nil, fmt.Errorf("verificatum: mixer %s: %w", nn, err)
			}
		}
		mr := MixerResult{Index: l}
		sess.Progress = nil
		if progress != nil {
			sess.Progress = func(done, total int) { progress(l, done, total) }
		}
		proof, err := ParseShuffleProof(trees[0], trees[1], trees[2], n)
		if err == nil {
			err = sess.VerifyShuffle(h, pk, in, out, proof)
		}
		if err != nil {
			mr.Err = err
			failures = append(failures, fmt.Sprintf("proof of shuffle of mixer %s: %v", nn, err))
		}
		res.Mixers = append(res.Mixers, mr)
		in = out
	}
	if res.Type == "shuffling" {
		final, err := readList(filepath.Join(dir, "ShuffledCiphertexts.bt"))
		if err != nil {
			return nil, err
		}
		res.OutputMatches = listsEqual(final, in)
		if !res.OutputMatches {
			failures = append(failures, "ShuffledCiphertexts.bt differs from the last mixer's output")
		}
	}
	if res.Type == "mixing" && len(failures) == 0 {
		var err error
		res.Plaintexts, failures, err = verifyDecryptionDir(dir, pi, sess, pk, in)
		if err != nil {
			return res, err
		}
	}
	if len(failures) > 0 {
		return res, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(failures, "; "))
	}
	return res, nil
}

// VerifyDecryption checks the decryption part of a "mixing" directory (§6.3), l being the
// last mixer's output (already verified), as `vmnv -mix` does after the shuffles, and returns
// the plaintexts. The error wraps ErrInvalid when a proof or Plaintexts.bt is wrong.
func VerifyDecryption(dir string, protInfo []byte, auxsid string, pk PublicKey, l []Ciphertext) ([]*group.Element, error) {
	pi, err := ParseProtInfo(protInfo)
	if err != nil {
		return nil, err
	}
	sess, err := NewSession(pi, auxsid)
	if err != nil {
		return nil, err
	}
	m, failures, err := verifyDecryptionDir(dir, pi, sess, pk, l)
	if err != nil {
		return nil, err
	}
	if len(failures) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(failures, "; "))
	}
	return m, nil
}

// verifyDecryptionDir checks the decryption part of a "mixing" directory (§6.3) of list l,
// the last mixer's output. It returns the plaintexts, or the failures, or a format error.
func verifyDecryptionDir(dir string, pi *ProtInfo, sess *Session, pk PublicKey, l []Ciphertext) ([]*group.Element, []string, error) {
	proofs := filepath.Join(dir, "proofs")
	polyT, err := readTree(filepath.Join(proofs, "PolynomialInExponent.bt"))
	if err != nil {
		return nil, nil, fmt.Errorf("verificatum: %w", err)
	}
	poly, err := ElementsFromTree(polyT)
	if err != nil || len(poly) != pi.Thres {
		return nil, nil, fmt.Errorf("%w: PolynomialInExponent.bt must hold %d points (thres)", ErrFormat, pi.Thres)
	}
	if !poly[0].Equal(pk.Y) {
		return nil, []string{"PolynomialInExponent.bt does not give FullPublicKey.bt's key"}, nil
	}
	ciT, err := readTree(filepath.Join(proofs, "CorrectIndices.bt"))
	if err != nil {
		return nil, nil, fmt.Errorf("verificatum: %w", err)
	}
	// A boolean array with one byte per party index 0..nopart (0 is no party).
	if !ciT.IsLeaf() || ciT.Len() != pi.NoPart+1 {
		return nil, nil, fmt.Errorf("%w: CorrectIndices.bt must be a leaf of %d bytes", ErrFormat, pi.NoPart+1)
	}
	var correct []int
	for j, b := range ciT.Data() {
		if b > 1 {
			return nil, nil, fmt.Errorf("%w: CorrectIndices.bt byte %d is not 0 or 1", ErrFormat, j)
		}
		if j > 0 && b == 1 {
			correct = append(correct, j)
		}
	}
	n := pi.NoPart
	factors := make([][]*group.Element, n)
	comms := make([]*DecryptionCommitment, n)
	replies := make([]*group.Scalar, n)
	for j := 1; j <= n; j++ {
		nn := fmt.Sprintf("%02d", j)
		t, err := readTree(filepath.Join(proofs, "DecryptionFactors"+nn+".bt"))
		if err == nil {
			factors[j-1], err = ElementsFromTree(t)
		}
		if err == nil && len(factors[j-1]) != len(l) {
			err = fmt.Errorf("%w: %d factors for %d ciphertexts", ErrFormat, len(factors[j-1]), len(l))
		}
		if err == nil {
			t, err = readTree(filepath.Join(proofs, "DecrFactCommitment"+nn+".bt"))
		}
		if err == nil {
			comms[j-1], err = DecryptionCommitmentFromTree(t)
		}
		if err == nil {
			t, err = readTree(filepath.Join(proofs, "DecrFactReply"+nn+".bt"))
		}
		if err == nil {
			replies[j-1], err = group.ScalarFromTree(t)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("verificatum: party %s decryption: %w", nn, err)
		}
	}
	seed := sess.DecryptionSeed(l, poly, factors)
	v := sess.DecryptionChallenge(seed, comms)
	ys := PartyKeys(poly, n)
	var failures []string
	for j := 1; j <= n; j++ {
		if err := sess.VerifyDecryptionFactors(seed, v, n, l, ys[j-1], factors[j-1], comms[j-1], replies[j-1]); err != nil {
			failures = append(failures, fmt.Sprintf("decryption factors of party %02d: %v", j, err))
		}
	}
	// Every party must be correct: we have no way to recover a failing party's key share as
	// Verificatum's protocol does (it would publish that share).
	if len(correct) != n {
		failures = append(failures, fmt.Sprintf("CorrectIndices.bt marks %d of %d parties correct", len(correct), n))
	}
	if len(failures) > 0 {
		return nil, failures, nil
	}
	m := CombinePlaintexts(l, correct[:pi.Thres], n, factors)
	ptT, err := readTree(filepath.Join(dir, "Plaintexts.bt"))
	if err != nil {
		return nil, nil, fmt.Errorf("verificatum: %w", err)
	}
	pts, err := ElementsFromTree(ptT)
	if err != nil || len(pts) != len(l) {
		return nil, nil, fmt.Errorf("%w: Plaintexts.bt must hold %d points", ErrFormat, len(l))
	}
	for i := range pts {
		if !pts[i].Equal(m[i]) {
			return nil, []string{fmt.Sprintf("Plaintexts.bt: plaintext %d is not the decryption", i)}, nil
		}
	}
	return m, nil, nil
}

func readList(path string) ([]Ciphertext, error) {
	t, err := readTree(path)
	if err != nil {
		return nil, fmt.Errorf("verificatum: %w", err)
	}
	l, err := ListFromTree(t)
	if err != nil {
		return nil, fmt.Errorf("verificatum: %s: %w", filepath.Base(path), err)
	}
	return l, nil
}

func listsEqual(a, b []Ciphertext) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
