package election

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// Decryption in Verificatum's format (§12.6, docs/spec/vote.md §6.3), so that `vmnv -mix`
// checks the decryption too. After the mixing every trustee j = 1..n, in three rounds, adds
// to each question's directory mix/qQQ:
//
//	round 1: proofs/DecryptionFactorsJJ.bt   f_i = u_i^(-x_j/Δ) of mixer K's output
//	round 2: proofs/DecrFactCommitmentJJ.bt  once every trustee's factors are there
//	round 3: proofs/DecrFactReplyJJ.bt       once every trustee's commitment is there
//
// and FinishVmnDecryption writes PolynomialInExponent.bt, CorrectIndices.bt, Plaintexts.bt
// and type "mixing". The files are not signed: each proof binds them to the trustee's key
// share, which only that trustee knows. Verificatum's batching seed covers every party's
// factors, so all n trustees must take part; our own shares (decrypt/share-NN.bt) need only t.

// ErrNoVmnDecryption is the warning of a record without the decryption in Verificatum's format.
var ErrNoVmnDecryption = errors.New("no decryption in Verificatum's format (mixctl vote vmn-decrypt): vmnv -mix cannot check the tally")

// vmnStateFile is, in a trustee's state directory, the secret of its round 2 (r per
// question) and then its round-3 replies, so that a rerun never answers two challenges
// with one r (which would reveal the key share).
const vmnStateFile = "vmn-decrypt.bt"

func vmnProof(kind string, j int) string { return fmt.Sprintf("proofs/%s%02d.bt", kind, j) }

// readElements reads an array of exactly n points from a proof file.
func readElements(path string, n int) ([]*group.Element, error) {
	t, err := readTreeFile(path)
	if err != nil {
		return nil, err
	}
	es, err := verificatum.ElementsFromTree(t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if len(es) != n {
		return nil, fmt.Errorf("%s: %d points, want %d", filepath.Base(path), len(es), n)
	}
	return es, nil
}

// readAll reads every trustee's file of a kind in question q's directory with parse; missing
// lists the trustees whose file is absent.
func readAll[T any](record string, q, n int, kind string, parse func(path string) (T, error)) ([]T, []int, error) {
	out := make([]T, n)
	var missing []int
	for j := 1; j <= n; j++ {
		p := filepath.Join(QuestionDir(record, q), filepath.FromSlash(vmnProof(kind, j)))
		v, err := parse(p)
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, j)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("question %d, trustee %d: %w", q, j, err)
		}
		out[j-1] = v
	}
	return out, missing, nil
}

func parseCommitment(path string) (*verificatum.DecryptionCommitment, error) {
	t, err := readTreeFile(path)
	if err != nil {
		return nil, err
	}
	return verificatum.DecryptionCommitmentFromTree(t)
}

// replaceRecordFile writes path whole through a temporary file and a rename, so that a
// crash leaves the old or the new content.
func replaceRecordFile(path string, b []byte) error {
	tmp := path + ".tmp"
	os.Remove(tmp)
	if err := writeNew(tmp, b, 0o644); err != nil {
		return fmt.Errorf("election: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("election: %w", err)
	}
	return nil
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// VmnDecryptStep runs trustee j's next round of the Verificatum-format decryption on final
// (mixer K's verified output, one list per question) and says what it did, or what it waits
// for. Run it again until it says "done". state is the trustee's private directory.
func VmnDecryptStep(rnd io.Reader, sd *SignedDefinition, j int, xj *group.Scalar, final [][]verificatum.Ciphertext, record, state string) (string, error) {
	d := &sd.Definition
	n := len(d.Trustees)
	if j < 1 || j > n {
		return "", fmt.Errorf("election: trustee %d is not in 1..%d", j, n)
	}
	qs := len(d.Questions)
	have := func(kind string) bool {
		for q := range qs {
			if !exists(filepath.Join(QuestionDir(record, q), filepath.FromSlash(vmnProof(kind, j)))) {
				return false
			}
		}
		return true
	}
	// Round 1: the factors (deterministic, so a rerun rewrites the same bytes).
	if !have("DecryptionFactors") {
		for q, l := range final {
			f := verificatum.DecryptionFactors(xj, n, l)
			p := filepath.Join(QuestionDir(record, q), filepath.FromSlash(vmnProof("DecryptionFactors", j)))
			if err := replaceRecordFile(p, verificatum.ElementsTree(f).Encode()); err != nil {
				return "", err
			}
		}
		return "round 1: decryption factors written", nil
	}
	sessions := make([]*verificatum.Session, qs)
	for q := range qs {
		s, err := session(sd, q)
		if err != nil {
			return "", err
		}
		sessions[q] = s
	}
	seeds := make([][]byte, qs)
	poly, err := vmnPolynomial(record, sd)
	if err != nil {
		return "", err
	}
	for q, l := range final {
		fs, missing, err := readAll(record, q, n, "DecryptionFactors", func(p string) ([]*group.Element, error) { return readElements(p, len(l)) })
		if err != nil {
			return "", err
		}
		if len(missing) > 0 {
			return fmt.Sprintf("waiting for the decryption factors of trustees %v (round 1)", missing), nil
		}
		seeds[q] = sessions[q].DecryptionSeed(l, poly, fs)
	}
	statePath := filepath.Join(state, vmnStateFile)
	kind, saved, err := loadVmnState(statePath, sd, j, qs)
	if err != nil {
		return "", err
	}
	// Round 2: the commitments, from r saved first.
	if !have("DecrFactCommitment") {
		if kind == "" {
			saved = make([]*group.Scalar, qs)
			for q := range saved {
				if saved[q], err = group.RandomScalar(rnd); err != nil {
					return "", err
				}
			}
			if err := saveVmnState(statePath, sd, j, "r", saved); err != nil {
				return "", err
			}
			kind = "r"
		}
		if kind != "r" {
			return "", fmt.Errorf("election: %s holds replies but a commitment is missing; the record was changed", statePath)
		}
		for q, l := range final {
			c, err := sessions[q].DecryptionCommitmentFor(seeds[q], l, saved[q])
			if err != nil {
				return "", err
			}
			p := filepath.Join(QuestionDir(record, q), filepath.FromSlash(vmnProof("DecrFactCommitment", j)))
			if err := replaceRecordFile(p, c.Tree().Encode()); err != nil {
				return "", err
			}
		}
		return "round 2: commitments written", nil
	}
	if have("DecrFactReply") && kind == "" {
		return "done: this trustee's decryption factors, commitments and replies are written", nil
	}
	// Round 3: the replies, saved before they are written so that a rerun never makes
	// another reply with the same r.
	if kind == "r" {
		replies := make([]*group.Scalar, qs)
		for q := range final {
			cs, missing, err := readAll(record, q, n, "DecrFactCommitment", parseCommitment)
			if err != nil {
				return "", err
			}
			if len(missing) > 0 {
				return fmt.Sprintf("waiting for the commitments of trustees %v (round 2)", missing), nil
			}
			v := sessions[q].DecryptionChallenge(seeds[q], cs)
			replies[q] = verificatum.ReplyDecryption(saved[q], xj, v, n)
		}
		if err := saveVmnState(statePath, sd, j, "k", replies); err != nil {
			return "", err
		}
		saved, kind = replies, "k"
	}
	if kind != "k" {
		return "", fmt.Errorf("election: %s is missing: this trustee's commitments were made elsewhere", statePath)
	}
	for q := range final {
		p := filepath.Join(QuestionDir(record, q), filepath.FromSlash(vmnProof("DecrFactReply", j)))
		if err := replaceRecordFile(p, saved[q].Tree().Encode()); err != nil {
			return "", err
		}
	}
	if err := os.Remove(statePath); err != nil {
		return "", fmt.Errorf("election: %w", err)
	}
	return "round 3: replies written", nil
}

// vmnPolynomial recomputes the joint polynomial in the exponent from the record's key
// generation.
func vmnPolynomial(record string, sd *SignedDefinition) ([]*group.Element, error) {
	kg, err := LoadKeyGen(filepath.Join(record, KeyGenDir), sd)
	if err != nil {
		return nil, err
	}
	kr, err := kg.Result(&sd.Definition)
	if err != nil {
		return nil, err
	}
	return kr.Qualified.Polynomial(sd.Definition.Threshold), nil
}

func saveVmnState(path string, sd *SignedDefinition, j int, kind string, ss []*group.Scalar) error {
	h := sd.Hash()
	items := make([]*bytetree.Tree, len(ss))
	for i, s := range ss {
		items[i] = s.Tree()
	}
	b := bytetree.Node(bytetree.String("vmn decryption "+kind), bytetree.Leaf(h[:]), bytetree.Uint32(uint32(j)), bytetree.Node(items...)).Encode()
	tmp := path + ".tmp"
	os.Remove(tmp)
	if err := writeNew(tmp, b, 0o600); err != nil {
		return fmt.Errorf("election: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("election: %w", err)
	}
	return nil
}

// loadVmnState returns ("", nil) when there is no state, else "r" or "k" and the scalars.
func loadVmnState(path string, sd *SignedDefinition, j, qs int) (string, []*group.Scalar, error) {
	if !exists(path) {
		return "", nil, nil
	}
	b, err := readSecret(path)
	if err != nil {
		return "", nil, err
	}
	t, err := bytetree.Parse(b, bytetree.DefaultLimits())
	h := sd.Hash()
	if err == nil && (t.IsLeaf() || t.Len() != 4 || string(t.Children()[1].Data()) != string(h[:]) ||
		string(t.Children()[2].Encode()) != string(bytetree.Uint32(uint32(j)).Encode()) || t.Children()[3].Len() != qs) {
		err = errors.New("not this trustee's state for this election")
	}
	if err != nil {
		return "", nil, fmt.Errorf("election: %s: %w", path, err)
	}
	kind, ok := strings.CutPrefix(string(t.Children()[0].Data()), "vmn decryption ")
	if !ok || (kind != "r" && kind != "k") {
		return "", nil, fmt.Errorf("election: %s: unknown state", path)
	}
	ss := make([]*group.Scalar, qs)
	for i, c := range t.Children()[3].Children() {
		if ss[i], err = group.ScalarFromTree(c); err != nil {
			return "", nil, fmt.Errorf("election: %s: %w", path, err)
		}
	}
	return kind, ss, nil
}

// VmnDecryptionComplete reports whether every trustee's reply is in every question's
// directory, and which trustees are missing otherwise.
func VmnDecryptionComplete(record string, sd *SignedDefinition) (bool, []int) {
	var missing []int
	for j := 1; j <= len(sd.Definition.Trustees); j++ {
		for q := range sd.Definition.Questions {
			if !exists(filepath.Join(QuestionDir(record, q), filepath.FromSlash(vmnProof("DecrFactReply", j)))) {
				missing = append(missing, j)
				break
			}
		}
	}
	return len(missing) == 0, missing
}

// FinishVmnDecryption completes each question's directory as Verificatum's "mixing" type
// once every trustee has replied: PolynomialInExponent.bt, CorrectIndices.bt (every trustee),
// Plaintexts.bt (combined from trustees 1..t) and type; it then checks the whole decryption
// as vmnv -mix does, and removes what it wrote if that fails. final is mixer K's verified
// output.
func FinishVmnDecryption(record string, sd *SignedDefinition, final [][]verificatum.Ciphertext, progress Progress) error {
	d := &sd.Definition
	n, t := len(d.Trustees), d.Threshold
	if ok, missing := VmnDecryptionComplete(record, sd); !ok {
		return fmt.Errorf("election: trustees %v have not replied (round 3)", missing)
	}
	poly, err := vmnPolynomial(record, sd)
	if err != nil {
		return err
	}
	pk := verificatum.PublicKey{Y: poly[0]}
	correct := make([]byte, n+1)
	for i := 1; i <= n; i++ {
		correct[i] = 1
	}
	first := make([]int, t)
	for i := range first {
		first[i] = i + 1
	}
	protInfo := ProtInfo(sd)
	for q, l := range final {
		qd := QuestionDir(record, q)
		fs, _, err := readAll(record, q, n, "DecryptionFactors", func(p string) ([]*group.Element, error) { return readElements(p, len(l)) })
		if err != nil {
			return err
		}
		files := []struct {
			name string
			b    []byte
		}{
			{"proofs/PolynomialInExponent.bt", verificatum.ElementsTree(poly).Encode()},
			{"proofs/CorrectIndices.bt", bytetree.Leaf(correct).Encode()},
			{"Plaintexts.bt", verificatum.ElementsTree(verificatum.CombinePlaintexts(l, first, n, fs)).Encode()},
		}
		for _, f := range files {
			if err := replaceRecordFile(filepath.Join(qd, filepath.FromSlash(f.name)), f.b); err != nil {
				return err
			}
		}
		if _, err := verificatum.VerifyDecryption(qd, protInfo, AuxSID(q), pk, l); err != nil {
			for _, f := range files {
				os.Remove(filepath.Join(qd, filepath.FromSlash(f.name)))
			}
			return fmt.Errorf("election: question %d: %w", q, err)
		}
		if err := replaceRecordFile(filepath.Join(qd, "type"), []byte("mixing")); err != nil {
			return err
		}
		progress.say("question %d: decryption in Verificatum's format verified and completed", q)
	}
	return nil
}

// verifyVmnDecryption checks each question's Verificatum-format decryption, when the record
// has one (type "mixing"), and that its plaintexts are those of the trustees' shares. A
// record without it gets a warning: vmnv -mix cannot check its tally.
func verifyVmnDecryption(record string, sd *SignedDefinition, pk verificatum.PublicKey, final [][]verificatum.Ciphertext, plaintexts [][]*group.Element, progress Progress) (warnings, errs []error) {
	protInfo := ProtInfo(sd)
	var types []string
	for q := range final {
		b, err := readLimited(filepath.Join(QuestionDir(record, q), "type"), verificatum.MaxSmallFile)
		if err != nil {
			return nil, []error{fmt.Errorf("question %d's proof directory: type: %w", q, err)}
		}
		types = append(types, string(b))
	}
	for _, ty := range types[1:] {
		if ty != types[0] {
			return nil, []error{errors.New("decryption in Verificatum's format: some questions' directories are of type mixing, others not")}
		}
	}
	if types[0] != "mixing" {
		return []error{ErrNoVmnDecryption}, nil
	}
	for q, l := range final {
		m, err := verificatum.VerifyDecryption(QuestionDir(record, q), protInfo, AuxSID(q), pk, l)
		if err != nil {
			errs = append(errs, fmt.Errorf("question %d: decryption in Verificatum's format: %w", q, err))
			continue
		}
		for i := range m {
			if !m[i].Equal(plaintexts[q][i]) {
				errs = append(errs, fmt.Errorf("question %d: Verificatum's plaintext %d differs from the trustees' shares' decryption", q, i))
				break
			}
		}
		progress.say("question %d: decryption in Verificatum's format verified", q)
	}
	return nil, errs
}
