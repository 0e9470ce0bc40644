package election

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// ErrVerify is wrapped by the error Verify returns when the record is complete enough to be
// checked but something in it is wrong.
var ErrVerify = errors.New("election: record does not verify")

// VerifyError lists every failure Verify found, in the order of the checks; the first one is
// what Error reports first.
type VerifyError struct{ Failures []error }

func (e *VerifyError) Error() string {
	var b strings.Builder
	b.WriteString(e.Failures[0].Error())
	if len(e.Failures) > 1 {
		fmt.Fprintf(&b, " (and %d more failures: ", len(e.Failures)-1)
		for i, f := range e.Failures[1:] {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(f.Error())
		}
		b.WriteString(")")
	}
	return b.String()
}

func (e *VerifyError) Unwrap() error { return ErrVerify }

// Result is what a successful Verify established.
type Result struct {
	Definition *SignedDefinition
	KeyGen     *KeyGenResult
	Ballots    []int // per question, the number of ballots counted
	Tally      *Tally
	// Warnings are invalid decryption shares that the decryption routed around (at least
	// Threshold valid shares remained for every question), and the absence of a decryption
	// in Verificatum's format (vmnv -mix cannot check the tally then).
	Warnings []error
}

// LoadDefinition reads and checks record/definition.json.
func LoadDefinition(record string) (*SignedDefinition, error) {
	b, err := readLimited(filepath.Join(record, DefinitionFile), MaxDefinitionSize)
	if err != nil {
		return nil, fmt.Errorf("election: definition: %w", err)
	}
	return ParseDefinition(b)
}

// Verify checks a complete record (§12.8) in this order: the definition's signature; the key
// generation (the qualified set and the key recomputed); params.bin; the board
// (board.VerifyBoard) and its input lists; each mixer and question (proof of shuffle, and
// that mixer 1's input is exactly the board's input lists and each next input the previous
// output); each trustee's decryption shares; the tally recomputed. It returns a *VerifyError
// wrapping ErrVerify with the first failure first and, where the later checks still make
// sense, the other failures too.
func Verify(record string, progress Progress) (*Result, error) {
	start := time.Now()
	r, final, err := VerifyMixing(record, progress)
	if err != nil {
		return nil, err
	}
	tally, err := decryptAndCount(record, r, final, progress)
	if err != nil {
		return nil, err
	}
	want, err := tally.Marshal()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Result, error) { return nil, &VerifyError{Failures: []error{err}} }
	got, err := readLimited(filepath.Join(record, TallyFile), MaxTallySize)
	if err != nil {
		return fail(fmt.Errorf("tally: %w", err))
	}
	if _, err := ParseTally(got); err != nil {
		return fail(fmt.Errorf("tally: %w", err))
	}
	if string(got) != string(want) {
		return fail(fmt.Errorf("tally: the published tally differs from the recomputed one: %s", tallyDiff(got, tally)))
	}
	progress.say("tally: recomputed and equal to the published one (total %s)", time.Since(start).Round(time.Millisecond))
	r.Tally = tally
	return r, nil
}

// VerifyMixing runs Verify's checks up to the mixing (definition, key generation, params,
// board, every mixer) and returns the last mixer's output lists, what the trustees decrypt.
// A trustee runs it before decrypting: decrypting lists that are not a verified shuffle of
// the board could reveal a voter's choice.
func VerifyMixing(record string, progress Progress) (*Result, [][]verificatum.Ciphertext, error) {
	return verifyPrefix(record, -1, progress)
}

// VerifyPrefix is VerifyMixing for the first k mixers only (k = 0: the board): it returns
// mixer k's output, the next mixer's input.
func VerifyPrefix(record string, k int, progress Progress) (*Result, [][]verificatum.Ciphertext, error) {
	if k < 0 {
		return nil, nil, fmt.Errorf("election: mixer count %d", k)
	}
	return verifyPrefix(record, k, progress)
}

func verifyPrefix(record string, upTo int, progress Progress) (*Result, [][]verificatum.Ciphertext, error) {
	fail := func(errs ...error) (*Result, [][]verificatum.Ciphertext, error) {
		return nil, nil, &VerifyError{Failures: errs}
	}
	start := time.Now()
	sd, err := LoadDefinition(record)
	if err != nil {
		return fail(fmt.Errorf("definition: %w", err))
	}
	d := &sd.Definition
	progress.say("definition of %q: signature by official %s valid", d.ID, sd.Official)

	kg, err := LoadKeyGen(filepath.Join(record, KeyGenDir), sd)
	if err != nil {
		return fail(err)
	}
	kr, err := kg.Result(d)
	if err != nil {
		return fail(err)
	}
	progress.say("key generation: %d qualified dealers, election key recomputed", len(kr.Qualified))

	inputs, errs := verifyBoard(record, sd, kr)
	if len(errs) > 0 {
		return fail(errs...)
	}
	progress.say("board: valid; %d ballots counted (%s)", len(inputs[0]), time.Since(start).Round(time.Millisecond))

	if upTo < 0 {
		upTo = len(d.Mixers)
	}
	if upTo > len(d.Mixers) {
		return fail(fmt.Errorf("mixing: the election has %d mixers, not %d", len(d.Mixers), upTo))
	}
	lists := inputs
	if upTo > 0 {
		if errs := verifyQuestionDirs(sd, kr.PublicKey, inputs, upTo, upTo == len(d.Mixers), record); len(errs) > 0 {
			return fail(errs...)
		}
	}
	for k := 1; k <= upTo; k++ {
		t0 := time.Now()
		out, errs := verifyMixer(sd, kr.PublicKey, k, lists, record, progress)
		if len(errs) > 0 {
			return fail(errs...)
		}
		lists = out
		progress.say("mixer %d (trustee %d): all %d questions verified (%s)", k, d.Mixers[k-1], len(d.Questions), time.Since(t0).Round(time.Millisecond))
	}
	if upTo == len(d.Mixers) {
		if errs := verifyShuffled(sd, lists, record); len(errs) > 0 {
			return fail(errs...)
		}
	}
	r := &Result{Definition: sd, KeyGen: kr}
	for _, l := range inputs {
		r.Ballots = append(r.Ballots, len(l))
	}
	return r, lists, nil
}

func decryptAndCount(record string, r *Result, final [][]verificatum.Ciphertext, progress Progress) (*Tally, error) {
	plaintexts, warnings, errs := verifyDecryption(record, r.Definition, r.KeyGen, final, progress)
	if len(errs) > 0 {
		return nil, &VerifyError{Failures: errs}
	}
	vw, errs := verifyVmnDecryption(record, r.Definition, r.KeyGen.PublicKey, final, plaintexts, progress)
	if len(errs) > 0 {
		return nil, &VerifyError{Failures: errs}
	}
	r.Warnings = append(warnings, vw...)
	return Count(r.Definition, plaintexts)
}

// TallyRecord verifies the record up to the decryption shares, combines them and returns the
// tally for tally.json (which must not be in the record yet for the caller to write it).
func TallyRecord(record string, progress Progress) (*Tally, error) {
	r, final, err := VerifyMixing(record, progress)
	if err != nil {
		return nil, err
	}
	return decryptAndCount(record, r, final, progress)
}

func tallyDiff(got []byte, want *Tally) string {
	t, err := ParseTally(got)
	if err != nil {
		return err.Error()
	}
	if len(t.Questions) != len(want.Questions) {
		return fmt.Sprintf("%d questions, recomputed %d", len(t.Questions), len(want.Questions))
	}
	for q := range t.Questions {
		a, b := t.Questions[q], want.Questions[q]
		if fmt.Sprint(a.Counts) != fmt.Sprint(b.Counts) || a.Invalid != b.Invalid {
			return fmt.Sprintf("question %d: published counts %v (invalid %d), recomputed %v (invalid %d)", q, a.Counts, a.Invalid, b.Counts, b.Invalid)
		}
	}
	return "the files differ outside the counts"
}
