package board

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
)

// Errors wrapped by the refusals of this package, so that the ballot box can map them to an
// acknowledgement status and a verifier can classify them.
var (
	// ErrMalformed: the bytes are not a well-formed encoding (shape, lengths, points, labels).
	ErrMalformed = errors.New("board: malformed")
	// ErrTooLarge: an input or a count is over its hard limit.
	ErrTooLarge = errors.New("board: over the size limit")
	// ErrWrongElection: a cast, receipt or close names another election.
	ErrWrongElection = errors.New("board: wrong election")
	// ErrNotEligible: the credential is not on the voter list.
	ErrNotEligible = errors.New("board: not eligible")
	// ErrBadSignature: a voter, box or trustee signature does not verify.
	ErrBadSignature = errors.New("board: bad signature")
	// ErrBadProof: a ballot's proof of knowledge does not verify (copied or altered ballot).
	ErrBadProof = errors.New("board: bad ballot proof")
	// ErrInvalid: a board breaks a rule of §10 (chain, order, times, close).
	ErrInvalid = errors.New("board: invalid")
)

// HashSize is the size of SHA-256 digests: election hash, entry hashes, chain links.
const HashSize = 32

// SignatureSize is the size of an Ed25519 signature.
const SignatureSize = 64

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// uint64Leaf is leaf(8 bytes big-endian).
func uint64Leaf(v uint64) *bytetree.Tree {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return bytetree.Leaf(b[:])
}

// timeLeafMillis encodes t as milliseconds since the Unix epoch (§11.1).
func timeLeafMillis(t time.Time) *bytetree.Tree { return uint64Leaf(uint64(t.UnixMilli())) }

// timeLeafSeconds encodes t as seconds since the Unix epoch (§11.1).
func timeLeafSeconds(t time.Time) *bytetree.Tree { return uint64Leaf(uint64(t.Unix())) }

// maxUnixSeconds bounds decoded times so that converting them never overflows int64 nanoseconds
// (year 2262); an election outside that range is malformed.
const maxUnixSeconds = (1<<63 - 1) / int64(time.Second)

// fixedLeaf returns the data of t, which must be a leaf of exactly n bytes.
func fixedLeaf(t *bytetree.Tree, n int, what string) ([]byte, error) {
	if !t.IsLeaf() || len(t.Data()) != n {
		return nil, malformed("%s: want a leaf of %d bytes", what, n)
	}
	return t.Data(), nil
}

func leafUint64(t *bytetree.Tree, what string) (uint64, error) {
	b, err := fixedLeaf(t, 8, what)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b), nil
}

func leafUint32(t *bytetree.Tree, what string) (uint32, error) {
	b, err := fixedLeaf(t, 4, what)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

func leafSeconds(t *bytetree.Tree, what string) (time.Time, error) {
	v, err := leafUint64(t, what)
	if err != nil {
		return time.Time{}, err
	}
	if v > uint64(maxUnixSeconds) {
		return time.Time{}, malformed("%s: %d seconds is out of range", what, v)
	}
	return time.Unix(int64(v), 0).UTC(), nil
}

func leafMillis(t *bytetree.Tree, what string) (time.Time, error) {
	v, err := leafUint64(t, what)
	if err != nil {
		return time.Time{}, err
	}
	if v > uint64(maxUnixSeconds)*1000 {
		return time.Time{}, malformed("%s: %d milliseconds is out of range", what, v)
	}
	return time.UnixMilli(int64(v)).UTC(), nil
}

func leafHash(t *bytetree.Tree, what string) ([HashSize]byte, error) {
	var h [HashSize]byte
	b, err := fixedLeaf(t, HashSize, what)
	if err != nil {
		return h, err
	}
	copy(h[:], b)
	return h, nil
}

func leafSignature(t *bytetree.Tree, what string) ([SignatureSize]byte, error) {
	var s [SignatureSize]byte
	b, err := fixedLeaf(t, SignatureSize, what)
	if err != nil {
		return s, err
	}
	copy(s[:], b)
	return s, nil
}

func leafKey(t *bytetree.Tree, what string) (keys.IdentityPublicKey, error) {
	b, err := fixedLeaf(t, keys.KeySize, what)
	if err != nil {
		return keys.IdentityPublicKey{}, err
	}
	k, err := keys.NewIdentityPublicKey(b)
	if err != nil {
		return keys.IdentityPublicKey{}, malformed("%s: %v", what, err)
	}
	return k, nil
}

// checkLabel checks that t is leaf(label).
func checkLabel(t *bytetree.Tree, label string) error {
	if !t.IsLeaf() || string(t.Data()) != label {
		return malformed("want the label %q", label)
	}
	return nil
}

// parseTree parses b as one byte tree with a size limit and an expected node width.
func parseTree(b []byte, maxBytes, maxDepth, children int, what string) (*bytetree.Tree, error) {
	if len(b) > maxBytes {
		return nil, fmt.Errorf("%w: %s of %d bytes, at most %d", ErrTooLarge, what, len(b), maxBytes)
	}
	t, err := bytetree.Parse(b, bytetree.Limits{MaxBytes: maxBytes, MaxDepth: maxDepth})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
	}
	if t.IsLeaf() || t.Len() != children {
		return nil, malformed("%s: want a node of %d children", what, children)
	}
	return t, nil
}

// short abbreviates a credential for error messages: the first 16 hex digits.
func short(k keys.IdentityPublicKey) string { return k.String()[:16] + "..." }

// ruleError is a refusal for a reason of substance (not the encoding): its text is only the
// reason, as the spec and the verifier's users read it, and it wraps the class (ErrInvalid,
// ErrBadSignature, ...) for errors.Is.
type ruleError struct {
	class error
	err   error
}

func (e *ruleError) Error() string   { return e.err.Error() }
func (e *ruleError) Unwrap() []error { return []error{e.class, e.err} }

func fail(class error, format string, a ...any) error {
	return &ruleError{class: class, err: fmt.Errorf(format, a...)}
}
