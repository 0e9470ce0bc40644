package election

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/ballot"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/trustee"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// Decryption (§12.6). Trustee j publishes decrypt/share-jj.bt: a signed message whose payload
// is node(one node(node(d_0..d_{N-1}), a, b, z) per question), the trustee.DecryptionShare of
// the last mixer's output list of that question. The election id bound into the
// Chaum-Pedersen proof (§8.2) is the 32-byte election hash.

// ShareName is the file name of trustee j's decryption share in decrypt/.
func ShareName(j int) string { return fmt.Sprintf("share-%02d.bt", j) }

// maxShareSize is the exact bound on a decryption share message for lists of these lengths.
func maxShareSize(lens []int) int {
	n := 1024
	for _, l := range lens {
		n += 3*5 + (l+2)*group.EncodedLen + 5 + group.ScalarLen
	}
	return n
}

// Decrypt computes and signs trustee j's decryption shares of the final lists (one per
// question). xj is the trustee's key share (the caller wipes it).
func Decrypt(rnd io.Reader, sd *SignedDefinition, j int, xj *group.Scalar, lists [][]verificatum.Ciphertext, signer *keys.IdentityPrivateKey, progress Progress) ([]byte, error) {
	if err := checkSigner(&sd.Definition, j, signer); err != nil {
		return nil, err
	}
	h := sd.Hash()
	items := make([]*bytetree.Tree, len(lists))
	for q, l := range lists {
		s, err := trustee.Decrypt(rnd, h[:], j, xj, l)
		if err != nil {
			return nil, fmt.Errorf("election: trustee %d, question %d: %w", j, q, err)
		}
		items[q] = bytetree.Node(verificatum.ElementsTree(s.Factors), s.A.Tree(), s.B.Tree(), s.Z.Tree())
		progress.say("trustee %d, question %d: %d decryption factors with proof", j, q, len(l))
	}
	return sealMessage(kindDecryption, h, j, bytetree.Node(items...), signer), nil
}

// ParseDecryptionShare parses trustee's signed shares for lists of the given lengths (one
// per question); it does not check the proofs (trustee.Combine does).
func ParseDecryptionShare(b []byte, sd *SignedDefinition, lens []int) (int, []*trustee.DecryptionShare, error) {
	j, p, err := openMessage(b, maxShareSize(lens), kindDecryption, sd.Hash(), &sd.Definition)
	if err != nil {
		return 0, nil, err
	}
	if p.IsLeaf() || p.Len() != len(lens) {
		return 0, nil, fmt.Errorf("%w: decryption share of trustee %d: want %d questions", ErrInvalid, j, len(lens))
	}
	out := make([]*trustee.DecryptionShare, len(lens))
	for q, it := range p.Children() {
		bad := func(what string, err error) (int, []*trustee.DecryptionShare, error) {
			return 0, nil, fmt.Errorf("%w: decryption share of trustee %d, question %d: %s: %w", ErrInvalid, j, q, what, err)
		}
		if it.IsLeaf() || it.Len() != 4 || it.Children()[0].IsLeaf() || it.Children()[0].Len() != lens[q] {
			return bad("shape", fmt.Errorf("want node(%d factors, a, b, z)", lens[q]))
		}
		c := it.Children()
		f, err := verificatum.ElementsFromTree(c[0])
		if err != nil {
			return bad("factors", err)
		}
		a, err := group.ElementFromTree(c[1])
		if err != nil {
			return bad("a", err)
		}
		bb, err := group.ElementFromTree(c[2])
		if err != nil {
			return bad("b", err)
		}
		z, err := group.ScalarFromTree(c[3])
		if err != nil {
			return bad("z", err)
		}
		out[q] = &trustee.DecryptionShare{Trustee: j, Factors: f, A: a, B: bb, Z: z}
	}
	return j, out, nil
}

// Tally is the published result (tally.json), in canonical JSON (§12.7).
type Tally struct {
	Election     string          `json:"election"`
	ElectionHash string          `json:"election_hash"`
	Questions    []QuestionTally `json:"questions"`
}

// QuestionTally is the count of one question. Invalid counts ballots whose plaintext is not
// one of the question's choices (a ballot's proof shows knowledge of its randomness, not that
// its choice is in range).
type QuestionTally struct {
	Text    string   `json:"text"`
	Choices []string `json:"choices"`
	Counts  []int    `json:"counts"`
	Invalid int      `json:"invalid"`
}

// MaxTallySize bounds tally.json.
const MaxTallySize = 4 << 20

// Count decodes the plaintexts of each question and counts them.
func Count(sd *SignedDefinition, plaintexts [][]*group.Element) (*Tally, error) {
	d := &sd.Definition
	if len(plaintexts) != len(d.Questions) {
		return nil, fmt.Errorf("election: %d plaintext lists for %d questions", len(plaintexts), len(d.Questions))
	}
	h := sd.Hash()
	t := &Tally{Election: d.ID, ElectionHash: hex.EncodeToString(h[:])}
	for q, ms := range plaintexts {
		qt := QuestionTally{Text: d.Questions[q].Text, Choices: d.Questions[q].Choices, Counts: make([]int, len(d.Questions[q].Choices))}
		for _, m := range ms {
			c, err := ballot.DecodeChoice(m)
			if err != nil || c < 0 || c >= len(qt.Counts) {
				qt.Invalid++
				continue
			}
			qt.Counts[c]++
		}
		t.Questions = append(t.Questions, qt)
	}
	return t, nil
}

// Marshal returns the canonical tally.json.
func (t *Tally) Marshal() ([]byte, error) {
	b, err := canonicalJSON(t)
	if err != nil {
		return nil, fmt.Errorf("election: encode tally: %w", err)
	}
	return b, nil
}

// ParseTally parses tally.json strictly (size, unknown fields, canonical form).
func ParseTally(b []byte) (*Tally, error) {
	if len(b) > MaxTallySize {
		return nil, fmt.Errorf("%w: tally of %d bytes exceeds %d", ErrInvalid, len(b), MaxTallySize)
	}
	var t Tally
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: tally: %w", ErrInvalid, err)
	}
	again, err := canonicalJSON(&t)
	if err != nil || !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: tally is not in canonical form", ErrInvalid)
	}
	return &t, nil
}

// verifyDecryption checks every published decryption share and combines t valid ones per
// question (any t give the same plaintexts). A share that is invalid is fatal only when it
// leaves a question with fewer than t valid shares; otherwise it is returned as a warning
// (the decryption routes around it).
func verifyDecryption(record string, sd *SignedDefinition, kr *KeyGenResult, lists [][]verificatum.Ciphertext, progress Progress) (plaintexts [][]*group.Element, warnings, errs []error) {
	d := &sd.Definition
	dir := filepath.Join(record, DecryptDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, []error{fmt.Errorf("decryption: %w", err)}
	}
	known := map[string]bool{}
	for j := 1; j <= len(d.Trustees); j++ {
		known[ShareName(j)] = true
	}
	var bad []error // failures of single shares; errs: of the record's layout
	for _, e := range ents {
		if !known[e.Name()] {
			errs = append(errs, fmt.Errorf("decryption: unexpected file %s", e.Name()))
		}
	}
	lens := make([]int, len(lists))
	for q, l := range lists {
		lens[q] = len(l)
	}
	h := sd.Hash()
	valid := make([][]*trustee.DecryptionShare, len(lists))
	for j := 1; j <= len(d.Trustees); j++ {
		b, err := readLimited(filepath.Join(dir, ShareName(j)), int64(maxShareSize(lens)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			bad = append(bad, fmt.Errorf("trustee %d: decryption share: %w", j, err))
			continue
		}
		idx, shares, err := ParseDecryptionShare(b, sd, lens)
		if err != nil {
			bad = append(bad, fmt.Errorf("trustee %d: %w", j, err))
			continue
		}
		if idx != j {
			bad = append(bad, fmt.Errorf("trustee %d: %s is signed by trustee %d", j, ShareName(j), idx))
			continue
		}
		yj := kr.Qualified.VerificationKey(j)
		for q, s := range shares {
			if err := s.Verify(h[:], yj, lists[q]); err != nil {
				bad = append(bad, fmt.Errorf("trustee %d, question %d: decryption share invalid: %w", j, q, err))
				continue
			}
			valid[q] = append(valid[q], s)
		}
		progress.say("trustee %d: decryption shares checked", j)
	}
	var short []error
	for q := range lists {
		if len(valid[q]) < d.Threshold {
			short = append(short, fmt.Errorf("question %d: only %d valid decryption shares, threshold %d", q, len(valid[q]), d.Threshold))
		}
	}
	if len(errs) > 0 || len(short) > 0 {
		return nil, nil, append(append(errs, bad...), short...)
	}
	out := make([][]*group.Element, len(lists))
	for q := range lists {
		ms, rejected, err := trustee.Combine(d.params(), kr.Qualified, h[:], lists[q], valid[q][:d.Threshold])
		if err != nil || len(rejected) > 0 {
			return nil, nil, []error{fmt.Errorf("question %d: combining decryption shares: %v %v", q, err, rejected)}
		}
		out[q] = ms
	}
	for _, w := range bad {
		progress.say("WARNING: %v (enough valid shares remain)", w)
	}
	return out, bad, nil
}
