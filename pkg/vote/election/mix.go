package election

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
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

// Mixing (§12.5). Mixer k (k = 1..K, the k-th entry of Definition.Mixers) shuffles, for each
// question q, the previous list (the board's input lists for k = 1) and writes one
// Verificatum "shuffling" directory with a single mixer, mix/kk/qQQ, with auxsid "mKKqQQ",
// under the election's own protInfo.xml (ProtInfo). Its signed mix/kk/mixer.bt binds the
// SHA-256 of every file of its question directories to the trustee's signing key.

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
// one party per mixer. It is a function of the definition alone, so the verifier uses its own
// copy, never the one in a proof directory.
func ProtInfo(sd *SignedDefinition) []byte {
	d := &sd.Definition
	h := sd.Hash()
	k := len(d.Mixers)
	var b strings.Builder
	w := func(tag, v string) { fmt.Fprintf(&b, "   <%s>%s</%s>\n\n", tag, v, tag) }
	b.WriteString("<protocol>\n\n")
	w("version", verificatum.Version)
	w("sid", "PV"+hex.EncodeToString(h[:]))
	// Verificatum's schema allows [A-Za-z][A-Za-z0-9_ ]{1,255} here; our ids may hold '-'.
	w("name", "Election_"+strings.ReplaceAll(d.ID, "-", "_"))
	w("descr", "")
	w("nopart", fmt.Sprint(k))
	w("statdist", fmt.Sprint(statDist))
	w("bullboard", "com.verificatum.protocol.com.BullBoardBasicHTTPW")
	w("thres", fmt.Sprint(min(d.Threshold, k)))
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
	// Our mixers have no Verificatum signature key nor server: pkey is empty and the addresses
	// are in 192.0.2.0/24, reserved for documentation (RFC 5737), so they reach nothing.
	for i, m := range d.Mixers {
		fmt.Fprintf(&b, "   <party>\n\n      <name>Party%02d</name>\n\n      <srtbyrole>anyrole</srtbyrole>\n\n      <descr>trustee %d</descr>\n\n", i+1, m)
		fmt.Fprintf(&b, "      <pkey></pkey>\n\n      <http>http://192.0.2.1:%d</http>\n\n      <hint>192.0.2.1:%d</hint>\n\n   </party>\n\n", 8040+i+1, 4040+i+1)
	}
	b.WriteString("</protocol>\n")
	return []byte(b.String())
}

// AuxSID is the auxiliary session identifier of mixer position k (1-based), question q.
func AuxSID(k, q int) string { return fmt.Sprintf("m%02dq%02d", k, q) }

// MixDir is the directory of mixer position k (1-based) in a record.
func MixDir(record string, k int) string { return filepath.Join(record, "mix", fmt.Sprintf("%02d", k)) }

func questionDir(mixDir string, q int) string { return filepath.Join(mixDir, fmt.Sprintf("q%02d", q)) }

func session(sd *SignedDefinition, k, q int) (*verificatum.Session, error) {
	pi, err := verificatum.ParseProtInfo(ProtInfo(sd))
	if err != nil {
		return nil, fmt.Errorf("election: protInfo: %w", err)
	}
	return verificatum.NewSession(pi, AuxSID(k, q))
}

// Mix runs mixer position k (1-based) of the election on in (one list per question): it
// re-encrypts and permutes each list under pk, proves it, writes MixDir(record, k) (which
// must not exist) and returns the output lists, the next mixer's input. signer must be the
// signing key of trustee Definition.Mixers[k-1].
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
	dir := MixDir(record, k)
	if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("election: %s exists already; refusing to overwrite a mixer's output", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("election: %w", err)
	}
	// A failed run leaves nothing behind, so that the mixer can simply run again.
	done := false
	defer func() {
		if !done {
			os.RemoveAll(dir)
		}
	}()
	protInfo := ProtInfo(sd)
	out := make([][]verificatum.Ciphertext, len(in))
	for q, list := range in {
		if len(list) == 0 {
			return nil, fmt.Errorf("election: question %d has no ballots to mix", q)
		}
		sess, err := session(sd, k, q)
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
		if err := verificatum.WriteShuffleDir(questionDir(dir, q), protInfo, AuxSID(k, q), pk, list, []verificatum.Mixing{{Output: o, Proof: proof}}); err != nil {
			return nil, fmt.Errorf("election: mixer %d question %d: %w", k, q, err)
		}
		out[q] = o
		progress.say("mixer %d (trustee %d), question %d: %d ballots shuffled and proved", k, d.Mixers[k-1], q, len(list))
	}
	digests, err := mixDigests(dir, len(d.Questions))
	if err != nil {
		return nil, err
	}
	msg := sealMessage(kindMix, sd.Hash(), d.Mixers[k-1], mixPayload(k, digests), signer)
	if err := writeNew(filepath.Join(dir, "mixer.bt"), msg, 0o644); err != nil {
		return nil, fmt.Errorf("election: %w", err)
	}
	done = true
	return out, nil
}

func mixPayload(k int, digests [][]byte) *bytetree.Tree {
	items := make([]*bytetree.Tree, len(digests))
	for i, dg := range digests {
		items[i] = bytetree.Leaf(dg)
	}
	return bytetree.Node(bytetree.Uint32(uint32(k)), bytetree.Node(items...))
}

// mixDigests hashes, per question, every file of the question directory: SHA-256 over
// (relative name, 0, uint64 length, content) in name order.
func mixDigests(dir string, questions int) ([][]byte, error) {
	out := make([][]byte, questions)
	for q := range questions {
		qd := questionDir(dir, q)
		var names []string
		err := filepath.WalkDir(qd, func(p string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() {
				return nil
			}
			if !e.Type().IsRegular() {
				return fmt.Errorf("%s is not a regular file", p)
			}
			rel, err := filepath.Rel(qd, p)
			if err != nil {
				return err
			}
			names = append(names, filepath.ToSlash(rel))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("election: %w", err)
		}
		sort.Strings(names)
		h := sha256.New()
		for _, n := range names {
			f, err := os.Open(filepath.Join(qd, filepath.FromSlash(n)))
			if err != nil {
				return nil, fmt.Errorf("election: %w", err)
			}
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("election: %w", err)
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
	b, err := readLimited(path, int64(verificatum.MaxTreeFile))
	if err != nil {
		return nil, err
	}
	t, err := bytetree.Parse(b, bytetree.Limits{MaxBytes: verificatum.MaxTreeFile, MaxDepth: 4})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	l, err := verificatum.ListFromTree(t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// verifyMixer checks mixer position k: its signed mixer.bt, and for each question the proof
// directory (under the election's own protInfo), its auxsid, its key, that its input is
// exactly in[q]. It returns the outputs, and one error per failure.
func verifyMixer(sd *SignedDefinition, pk verificatum.PublicKey, k int, in [][]verificatum.Ciphertext, record string, progress Progress) ([][]verificatum.Ciphertext, []error) {
	d := &sd.Definition
	dir := MixDir(record, k)
	who := fmt.Sprintf("mixer %d (trustee %d)", k, d.Mixers[k-1])
	b, err := readLimited(filepath.Join(dir, "mixer.bt"), MaxKeyGenMessage)
	if err != nil {
		return nil, []error{fmt.Errorf("%s: %w", who, err)}
	}
	idx, payload, err := openMessage(b, MaxKeyGenMessage, kindMix, sd.Hash(), d)
	if err != nil {
		return nil, []error{fmt.Errorf("%s: mixer.bt: %w", who, err)}
	}
	if idx != d.Mixers[k-1] {
		return nil, []error{fmt.Errorf("%s: mixer.bt is signed by trustee %d", who, idx)}
	}
	digests, err := mixDigests(dir, len(d.Questions))
	if err != nil {
		return nil, []error{fmt.Errorf("%s: %w", who, err)}
	}
	if string(payload.Encode()) != string(mixPayload(k, digests).Encode()) {
		return nil, []error{fmt.Errorf("%s: mixer.bt does not match the files of its proof directories", who)}
	}
	protInfo := ProtInfo(sd)
	var errs []error
	out := make([][]verificatum.Ciphertext, len(d.Questions))
	for q := range d.Questions {
		qd := questionDir(dir, q)
		where := fmt.Sprintf("%s, question %d", who, q)
		aux, err := readLimited(filepath.Join(qd, "auxsid"), verificatum.MaxSmallFile)
		if err != nil || string(aux) != AuxSID(k, q) {
			errs = append(errs, fmt.Errorf("%s: auxsid is not %q", where, AuxSID(k, q)))
			continue
		}
		res, err := verificatum.VerifyDir(qd, protInfo)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: proof of shuffle invalid: %w", where, err))
			continue
		}
		if res.Type != "shuffling" || len(res.Mixers) != 1 || !res.OutputMatches {
			errs = append(errs, fmt.Errorf("%s: not a single-mixer shuffling directory", where))
			continue
		}
		pkb, err := readLimited(filepath.Join(qd, "FullPublicKey.bt"), 1024)
		if err != nil || string(pkb) != string(pk.Tree().Encode()) {
			errs = append(errs, fmt.Errorf("%s: FullPublicKey.bt is not the election key", where))
			continue
		}
		got, err := readList(filepath.Join(qd, "Ciphertexts.bt"))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: input: %w", where, err))
			continue
		}
		if msg := compareLists(got, in[q]); msg != "" {
			src := fmt.Sprintf("the output of mixer %d", k-1)
			if k == 1 {
				src = "the board's input list"
			}
			errs = append(errs, fmt.Errorf("%s: input is not %s: %s", where, src, msg))
			continue
		}
		o, err := readList(filepath.Join(qd, "ShuffledCiphertexts.bt"))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: output: %w", where, err))
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
