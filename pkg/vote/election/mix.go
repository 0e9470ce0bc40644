package election

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// File names of a record (§12.4).
const (
	DefinitionFile = "definition.json"
	KeyGenDir      = "keygen"
	ParamsFile     = "params.bin"
	BoardFile      = "board.bin"
	DecryptDir     = "decrypt"
	TallyFile      = "tally.json"
)

// Mixing (§12.5). Each question q has one Verificatum "shuffling" directory, mix/qQQ, with
// auxsid "qQQ" under the election's own protInfo.xml (ProtInfo), which holds every mixer's
// proof in mixing order: mixer k (k = 1..K, the k-th entry of Definition.Mixers) shuffles
// mixer k-1's output (the board's input lists for k = 1) and adds its files MixerFiles(k).
// So `vmnv -shuffle` checks the whole chain of a question at once. Mixer k's signed
// mix/mixer-KK.bt binds the SHA-256 of the files it added to each question's directory.

const kindMix = "mix"

// Verificatum parameters of the election's sessions (§12.5): Verificatum's defaults.
const (
	statDist = 100
	vBitsRO  = 256
	eBitsRO  = 256
)

// Progress receives one line per finished step of a long operation (per mixer and question,
// per trustee); the caller adds timing. It may be nil.
type Progress func(msg string)

func (p Progress) say(format string, a ...any) {
	if p != nil {
		p(fmt.Sprintf(format, a...))
	}
}

// ProtInfo returns the election's protInfo.xml: session identifier the hex election hash,
// one party per trustee (party NN is trustee NN, the index of its key share), threshold t. It
// is a function of the definition alone, so the verifier uses its own copy, never the one in
// a proof directory.
func ProtInfo(sd *SignedDefinition) []byte {
	d := &sd.Definition
	h := sd.Hash()
	var b strings.Builder
	w := func(tag, v string) { fmt.Fprintf(&b, "   <%s>%s</%s>\n\n", tag, v, tag) }
	b.WriteString("<protocol>\n\n")
	w("version", verificatum.Version)
	w("sid", "PV"+hex.EncodeToString(h[:]))
	// Verificatum's schema allows [A-Za-z][A-Za-z0-9_ ]{1,255} here; our ids may hold '-'.
	w("name", "Election_"+strings.ReplaceAll(d.ID, "-", "_"))
	w("descr", "")
	w("nopart", fmt.Sprint(len(d.Trustees)))
	w("statdist", fmt.Sprint(statDist))
	w("bullboard", "com.verificatum.protocol.com.BullBoardBasicHTTPW")
	// vmnv refuses a directory with fewer shuffles than thres; the definition requires at
	// least t mixers (§12.1), so thres is t itself.
	w("thres", fmt.Sprint(d.Threshold))
	w("pgroup", group.Name)
	w("keywidth", "1")
	w("vbitlen", "128")
	w("vbitlenro", fmt.Sprint(vBitsRO))
	w("ebitlen", "128")
	w("ebitlenro", fmt.Sprint(eBitsRO))
	w("prg", "SHA-256")
	w("rohash", "SHA-256")
	w("corr", "noninteractive")
	w("width", "1")
	w("maxciph", "0")
	// vmnv validates the file against the schema of its bulletin board (BullBoardBasicHTTPW),
	// which requires pkey, http and hint in every party, in this order, and never uses them.
	// Our trustees have no Verificatum signature key nor server: pkey is empty and the
	// addresses are in 192.0.2.0/24, reserved for documentation (RFC 5737), so they reach
	// nothing.
	for i := range d.Trustees {
		fmt.Fprintf(&b, "   <party>\n\n      <name>Party%02d</name>\n\n      <srtbyrole>anyrole</srtbyrole>\n\n      <descr>trustee %d</descr>\n\n", i+1, i+1)
		fmt.Fprintf(&b, "      <pkey></pkey>\n\n      <http>http://192.0.2.1:%d</http>\n\n      <hint>192.0.2.1:%d</hint>\n\n   </party>\n\n", 8040+i+1, 4040+i+1)
	}
	b.WriteString("</protocol>\n")
	return []byte(b.String())
}

// AuxSID is the auxiliary session identifier of question q's mixing directory.
func AuxSID(q int) string { return fmt.Sprintf("q%02d", q) }

// MixDir is the directory of the mixing proofs in a record.
func MixDir(record string) string { return filepath.Join(record, "mix") }

// QuestionDir is question q's Verificatum proof directory in a record.
func QuestionDir(record string, q int) string {
	return filepath.Join(MixDir(record), fmt.Sprintf("q%02d", q))
}

// MixerFile is the signed message of mixer position k (1-based) in a record.
func MixerFile(record string, k int) string {
	return filepath.Join(MixDir(record), fmt.Sprintf("mixer-%02d.bt", k))
}

func session(sd *SignedDefinition, q int) (*verificatum.Session, error) {
	pi, err := verificatum.ParseProtInfo(ProtInfo(sd))
	if err != nil {
		return nil, fmt.Errorf("election: protInfo: %w", err)
	}
	return verificatum.NewSession(pi, AuxSID(q))
}

// Mix runs mixer position k (1-based) of the election on in (one list per question, mixer
// k-1's output or the board's input lists for k = 1, which the caller verified): it
// re-encrypts and permutes each list under pk, proves it, adds its files to each question's
// directory, signs them in MixerFile(record, k) and returns the output lists, the next
// mixer's input. signer must be the signing key of trustee Definition.Mixers[k-1]. A mixer
// that failed or was interrupted before it signed can run again: its unsigned files are
// removed first.
func Mix(rnd io.Reader, sd *SignedDefinition, pk verificatum.PublicKey, k int, in [][]verificatum.Ciphertext, record string, signer *keys.IdentityPrivateKey, progress Progress) ([][]verificatum.Ciphertext, error) {
	d := &sd.Definition
	if k < 1 || k > len(d.Mixers) {
		return nil, fmt.Errorf("election: mixer position %d is not in 1..%d", k, len(d.Mixers))
	}
	if err := checkSigner(d, d.Mixers[k-1], signer); err != nil {
		return nil, err
	}
	if len(in) != len(d.Questions) {
		return nil, fmt.Errorf("election: %d input lists for %d questions", len(in), len(d.Questions))
	}
	mf := MixerFile(record, k)
	if _, err := os.Stat(mf); err == nil {
		return nil, fmt.Errorf("election: %s exists already; refusing to overwrite a mixer's output", mf)
	}
	if k > 1 {
		if _, err := os.Stat(MixerFile(record, k-1)); err != nil {
			return nil, fmt.Errorf("election: mixer %d has not signed its output: %w", k-1, err)
		}
	}
	if err := os.MkdirAll(MixDir(record), 0o755); err != nil {
		return nil, fmt.Errorf("election: %w", err)
	}
	// Files left by an earlier run that did not sign them (k = 1: the whole directories).
	if err := rollBack(record, k, len(d.Questions)); err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			rollBack(record, k, len(d.Questions))
		}
	}()
	protInfo := ProtInfo(sd)
	out := make([][]verificatum.Ciphertext, len(in))
	for q, list := range in {
		if len(list) == 0 {
			return nil, fmt.Errorf("election: question %d has no ballots to mix", q)
		}
		qd := QuestionDir(record, q)
		if k == 1 {
			if err := verificatum.CreateShuffleDir(qd, protInfo, AuxSID(q), pk, list); err != nil {
				return nil, fmt.Errorf("election: question %d: %w", q, err)
			}
		}
		sess, err := session(sd, q)
		if err != nil {
			return nil, err
		}
		h, err := sess.Generators(len(list))
		if err != nil {
			return nil, fmt.Errorf("election: generators: %w", err)
		}
		o, proof, err := sess.Shuffle(rnd, h, pk, list)
		if err != nil {
			return nil, fmt.Errorf("election: mixer %d question %d: %w", k, q, err)
		}
		if err := verificatum.AppendMixing(qd, k, verificatum.Mixing{Output: o, Proof: proof}); err != nil {
			return nil, fmt.Errorf("election: mixer %d question %d: %w", k, q, err)
		}
		out[q] = o
		progress.say("mixer %d (trustee %d), question %d: %d ballots shuffled and proved", k, d.Mixers[k-1], q, len(list))
	}
	digests, err := mixDigests(record, k, len(d.Questions))
	if err != nil {
		return nil, err
	}
	msg := sealMessage(kindMix, sd.Hash(), d.Mixers[k-1], mixPayload(k, digests), signer)
	if err := writeNew(mf, msg, 0o644); err != nil {
		return nil, fmt.Errorf("election: %w", err)
	}
	done = true
	return out, nil
}

// rollBack removes what mixer k may have added without signing: for k = 1 the question
// directories, otherwise its files and those of any later position.
func rollBack(record string, k, questions int) error {
	for q := range questions {
		qd := QuestionDir(record, q)
		if k == 1 {
			if err := os.RemoveAll(qd); err != nil {
				return fmt.Errorf("election: %w", err)
			}
			continue
		}
		if err := verificatum.TruncateMixings(qd, k-1); err != nil {
			return fmt.Errorf("election: question %d: %w", q, err)
		}
	}
	return nil
}

func mixPayload(k int, digests [][]byte) *bytetree.Tree {
	items := make([]*bytetree.Tree, len(digests))
	for i, dg := range digests {
		items[i] = bytetree.Leaf(dg)
	}
	return bytetree.Node(bytetree.Uint32(uint32(k)), bytetree.Node(items...))
}

// mixDigests hashes, per question, the files mixer k added to the question's directory
// (verificatum.MixerFiles(k), in name order): SHA-256 over (relative name, 0, uint64 length,
// content). Each file is bounded by verificatum.MaxTreeFile before it is read.
func mixDigests(record string, k, questions int) ([][]byte, error) {
	out := make([][]byte, questions)
	for q := range questions {
		qd := QuestionDir(record, q)
		h := sha256.New()
		for _, n := range verificatum.MixerFiles(k) {
			f, err := os.Open(filepath.Join(qd, filepath.FromSlash(n)))
			if err != nil {
				return nil, fmt.Errorf("election: %w", err)
			}
			st, err := f.Stat()
			if err == nil && (!st.Mode().IsRegular() || st.Size() > verificatum.MaxTreeFile) {
				err = fmt.Errorf("%s is not a regular file of at most %d bytes", n, verificatum.MaxTreeFile)
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("election: question %d: %w", q, err)
			}
			io.WriteString(h, n)
			h.Write([]byte{0})
			var l [8]byte
			for i := range 8 {
				l[i] = byte(uint64(st.Size()) >> (56 - 8*i))
			}
			h.Write(l[:])
			_, err = io.Copy(h, io.LimitReader(f, st.Size()))
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("election: %w", err)
			}
		}
		out[q] = h.Sum(nil)
	}
	return out, nil
}

// readList reads a ciphertext list file of a proof directory.
func readList(path string) ([]verificatum.Ciphertext, error) {
	t, err := readTreeFile(path)
	if err != nil {
		return nil, err
	}
	l, err := verificatum.ListFromTree(t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

func readTreeFile(path string) (*bytetree.Tree, error) {
	b, err := readLimited(path, int64(verificatum.MaxTreeFile))
	if err != nil {
		return nil, err
	}
	t, err := bytetree.Parse(b, bytetree.Limits{MaxBytes: verificatum.MaxTreeFile, MaxDepth: 4})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// verifyMixer checks mixer position k: its signed mixer file, and for each question its proof
// of shuffle (under the election's own protInfo) from in[q] to its output. It returns the
// outputs, and one error per failure.
func verifyMixer(sd *SignedDefinition, pk verificatum.PublicKey, k int, in [][]verificatum.Ciphertext, record string, progress Progress) ([][]verificatum.Ciphertext, []error) {
	d := &sd.Definition
	who := fmt.Sprintf("mixer %d (trustee %d)", k, d.Mixers[k-1])
	b, err := readLimited(MixerFile(record, k), MaxKeyGenMessage)
	if err != nil {
		return nil, []error{fmt.Errorf("%s: %w", who, err)}
	}
	idx, payload, err := openMessage(b, MaxKeyGenMessage, kindMix, sd.Hash(), d)
	if err != nil {
		return nil, []error{fmt.Errorf("%s: %s: %w", who, filepath.Base(MixerFile(record, k)), err)}
	}
	if idx != d.Mixers[k-1] {
		return nil, []error{fmt.Errorf("%s: %s is signed by trustee %d", who, filepath.Base(MixerFile(record, k)), idx)}
	}
	digests, err := mixDigests(record, k, len(d.Questions))
	if err != nil {
		return nil, []error{fmt.Errorf("%s: %w", who, err)}
	}
	if string(payload.Encode()) != string(mixPayload(k, digests).Encode()) {
		return nil, []error{fmt.Errorf("%s: %s does not match its files in the proof directories", who, filepath.Base(MixerFile(record, k)))}
	}
	var errs []error
	out := make([][]verificatum.Ciphertext, len(d.Questions))
	for q := range d.Questions {
		qd := QuestionDir(record, q)
		where := fmt.Sprintf("%s, question %d", who, q)
		names := verificatum.MixerFiles(k)
		o, err := readList(filepath.Join(qd, names[0]))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: output: %w", where, err))
			continue
		}
		var trees [3]*bytetree.Tree
		for i := range trees {
			if trees[i], err = readTreeFile(filepath.Join(qd, names[i+1])); err != nil {
				break
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		proof, err := verificatum.ParseShuffleProof(trees[0], trees[1], trees[2], len(in[q]))
		if err == nil && len(o) != len(in[q]) {
			err = fmt.Errorf("%d output ciphertexts for %d input", len(o), len(in[q]))
		}
		if err == nil {
			var sess *verificatum.Session
			var h []*group.Element
			if sess, err = session(sd, q); err == nil {
				if h, err = sess.Generators(len(in[q])); err == nil {
					err = sess.VerifyShuffle(h, pk, in[q], o, proof)
				}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: proof of shuffle invalid: %w", where, err))
			continue
		}
		out[q] = o
		progress.say("%s: proof of shuffle verified (%d ciphertexts)", where, len(o))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// verifyQuestionDirs checks the files of each question's directory that no mixer signs, as
// vmnv reads them: the Verificatum version, type, auxsid and width, protInfo.xml equal to
// the election's, FullPublicKey.bt the election key, Ciphertexts.bt the board's input list,
// and activethreshold: K when all mixers are being verified (complete), otherwise at least
// mixers (a later mixer may have begun).
func verifyQuestionDirs(sd *SignedDefinition, pk verificatum.PublicKey, inputs [][]verificatum.Ciphertext, mixers int, complete bool, record string) []error {
	var errs []error
	protInfo := ProtInfo(sd)
	for q := range sd.Definition.Questions {
		qd := QuestionDir(record, q)
		where := fmt.Sprintf("question %d's proof directory", q)
		want := map[string]string{
			"version": verificatum.Version, "type": "shuffling", "auxsid": AuxSID(q), "width": "1",
			"protInfo.xml": string(protInfo), "FullPublicKey.bt": string(pk.Tree().Encode()),
		}
		for _, name := range []string{"version", "type", "auxsid", "width", "protInfo.xml", "FullPublicKey.bt"} {
			b, err := readLimited(filepath.Join(qd, name), verificatum.MaxProtInfoSize)
			// "mixing" once the decryption in Verificatum's format is complete (§12.6).
			if name == "type" && string(b) == "mixing" {
				continue
			}
			if err != nil || string(b) != want[name] {
				errs = append(errs, fmt.Errorf("%s: %s is not the election's", where, name))
			}
		}
		at, err := readLimited(filepath.Join(qd, "proofs", "activethreshold"), verificatum.MaxSmallFile)
		n, _ := strconv.Atoi(string(at))
		switch {
		case err != nil || strconv.Itoa(n) != string(at):
			errs = append(errs, fmt.Errorf("%s: proofs/activethreshold unreadable", where))
		case complete && n != mixers:
			errs = append(errs, fmt.Errorf("%s: activethreshold is %d, the election has %d mixers", where, n, mixers))
		case n < mixers:
			errs = append(errs, fmt.Errorf("%s: activethreshold is %d, below the %d mixers verified", where, n, mixers))
		}
		got, err := readList(filepath.Join(qd, "Ciphertexts.bt"))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: input: %w", where, err))
		} else if msg := compareLists(got, inputs[q]); msg != "" {
			errs = append(errs, fmt.Errorf("%s: Ciphertexts.bt is not the board's input list: %s", where, msg))
		}
	}
	return errs
}

// verifyShuffled checks that each question's ShuffledCiphertexts.bt, which vmnv compares
// with the last proof's output, is final[q], the last mixer's verified output.
func verifyShuffled(sd *SignedDefinition, final [][]verificatum.Ciphertext, record string) []error {
	var errs []error
	for q := range sd.Definition.Questions {
		got, err := readList(filepath.Join(QuestionDir(record, q), "ShuffledCiphertexts.bt"))
		if err != nil {
			errs = append(errs, fmt.Errorf("question %d's proof directory: output: %w", q, err))
		} else if msg := compareLists(got, final[q]); msg != "" {
			errs = append(errs, fmt.Errorf("question %d's proof directory: ShuffledCiphertexts.bt is not the last mixer's output: %s", q, msg))
		}
	}
	return errs
}

func compareLists(got, want []verificatum.Ciphertext) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d ciphertexts where %d are expected", len(got), len(want))
	}
	for i := range got {
		if !got[i].Equal(want[i]) {
			return fmt.Sprintf("ciphertext %d differs", i)
		}
	}
	return ""
}
