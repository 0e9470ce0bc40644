package board

import (
	"crypto/sha256"
	"fmt"
	"regexp"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/ballot"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// Limits of the parameters (§11.2). They bound what a box and a verifier allocate.
const (
	// MaxQuestions bounds the questions of an election, so that a cast (one 248-byte ballot
	// per question) fits in one fragment of the default geometry.
	MaxQuestions = 16
	// MaxChoicesPerQuestion bounds the choices of a question (ballot.MaxChoices).
	MaxChoicesPerQuestion = ballot.MaxChoices
	// MaxVoters bounds the voter list.
	MaxVoters = 1 << 20
	// MaxTrustees bounds the trustees (docs/spec/vote.md §8.1: n <= 64).
	MaxTrustees = 64
	// MaxParamsSize is the size of the largest encoded Params: MaxVoters and MaxTrustees keys
	// and MaxQuestions counts around a fixed header.
	MaxParamsSize = 1024 + (MaxVoters+MaxTrustees)*(5+keys.KeySize) + MaxQuestions*9
)

const paramsLabel = "panoramix vote board params v1"

// ElectionIDPattern is the form of an election identifier: it is the Recipient local part of
// casts (the service is "vote"), so it follows the service name rules.
var ElectionIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}$`)

// Params is what a ballot box needs for one election (§11.2).
type Params struct {
	// ElectionID names the election: [a-z][a-z0-9-]{0,15}; it is the mixnet Recipient.
	ElectionID string
	// ElectionHash is SHA-256 of the signed election definition file.
	ElectionHash [HashSize]byte
	// PublicKey is the election's threshold ElGamal key.
	PublicKey verificatum.PublicKey
	// Questions holds the number of choices of each question (1 to MaxChoicesPerQuestion).
	Questions []int
	// Voters are the eligible credentials, distinct.
	Voters []keys.IdentityPublicKey
	// Trustees are the trustees' signing keys; trustee i (1-based) is Trustees[i-1].
	Trustees []keys.IdentityPublicKey
	// Threshold is the number of distinct trustee signatures a close needs.
	Threshold int
	// Opens and Closes bound the voting period [Opens, Closes), whole seconds.
	Opens, Closes time.Time
	// BoxKey is the ballot box's board-signing key.
	BoxKey keys.IdentityPublicKey

	voters map[keys.IdentityPublicKey]struct{} // built by Validate
}

// Validate checks p against the rules and limits of §11.2 and indexes the voter list. Call it
// (ParseParams does) before sharing p between goroutines: the first call writes p's index, and
// later calls only read it. Params must not be changed after Validate.
func (p *Params) Validate() error {
	switch {
	case !ElectionIDPattern.MatchString(p.ElectionID):
		return fmt.Errorf("%w: election id %q does not match %s", ErrMalformed, p.ElectionID, ElectionIDPattern)
	case p.PublicKey.Y == nil || p.PublicKey.Y.IsIdentity():
		return fmt.Errorf("%w: no election public key", ErrMalformed)
	case len(p.Questions) == 0 || len(p.Questions) > MaxQuestions:
		return fmt.Errorf("%w: %d questions, want 1 to %d", ErrTooLarge, len(p.Questions), MaxQuestions)
	case len(p.Voters) == 0 || len(p.Voters) > MaxVoters:
		return fmt.Errorf("%w: %d voters, want 1 to %d", ErrTooLarge, len(p.Voters), MaxVoters)
	case len(p.Trustees) == 0 || len(p.Trustees) > MaxTrustees:
		return fmt.Errorf("%w: %d trustees, want 1 to %d", ErrTooLarge, len(p.Trustees), MaxTrustees)
	case p.Threshold < 1 || p.Threshold > len(p.Trustees):
		return fmt.Errorf("%w: threshold %d, want 1 to %d", ErrMalformed, p.Threshold, len(p.Trustees))
	case p.Opens.Unix() < 0 || p.Closes.Unix() > maxUnixSeconds:
		return fmt.Errorf("%w: voting period out of range", ErrMalformed)
	case p.Opens.Nanosecond() != 0 || p.Closes.Nanosecond() != 0:
		return fmt.Errorf("%w: opening and closing times must be whole seconds", ErrMalformed)
	case !p.Opens.Before(p.Closes):
		return fmt.Errorf("%w: the election closes (%s) before it opens (%s)", ErrMalformed, p.Closes.UTC().Format(time.RFC3339), p.Opens.UTC().Format(time.RFC3339))
	}
	for q, n := range p.Questions {
		if n < 1 || n > MaxChoicesPerQuestion {
			return fmt.Errorf("%w: question %d has %d choices, want 1 to %d", ErrMalformed, q, n, MaxChoicesPerQuestion)
		}
	}
	if _, err := keys.NewIdentityPublicKey(p.BoxKey[:]); err != nil {
		return fmt.Errorf("%w: box key: %w", ErrMalformed, err)
	}
	seen := make(map[keys.IdentityPublicKey]struct{}, len(p.Trustees))
	for i, k := range p.Trustees {
		if _, err := keys.NewIdentityPublicKey(k[:]); err != nil {
			return fmt.Errorf("%w: trustee %d: %w", ErrMalformed, i+1, err)
		}
		if _, dup := seen[k]; dup {
			return fmt.Errorf("%w: trustee %d: key %s appears twice", ErrMalformed, i+1, k)
		}
		seen[k] = struct{}{}
	}
	if p.voters != nil && len(p.voters) == len(p.Voters) {
		return nil // validated and indexed before; Params must not change after Validate
	}
	voters := make(map[keys.IdentityPublicKey]struct{}, len(p.Voters))
	for i, k := range p.Voters {
		if _, err := keys.NewIdentityPublicKey(k[:]); err != nil {
			return fmt.Errorf("%w: voter %d: %w", ErrMalformed, i, err)
		}
		if _, dup := voters[k]; dup {
			return fmt.Errorf("%w: voter %d: credential %s appears twice", ErrMalformed, i, k)
		}
		voters[k] = struct{}{}
	}
	p.voters = voters
	return nil
}

// Eligible reports whether k is on the voter list. It uses the index Validate builds and scans
// the list when Validate has not run.
func (p *Params) Eligible(k keys.IdentityPublicKey) bool {
	if p.voters != nil {
		_, ok := p.voters[k]
		return ok
	}
	for _, v := range p.Voters {
		if v == k {
			return true
		}
	}
	return false
}

func (p *Params) tree() *bytetree.Tree {
	qs := make([]*bytetree.Tree, len(p.Questions))
	for i, n := range p.Questions {
		qs[i] = bytetree.Uint32(uint32(n))
	}
	keyList := func(ks []keys.IdentityPublicKey) *bytetree.Tree {
		ts := make([]*bytetree.Tree, len(ks))
		for i := range ks {
			ts[i] = bytetree.Leaf(ks[i][:])
		}
		return bytetree.Node(ts...)
	}
	return bytetree.Node(
		bytetree.String(paramsLabel),
		bytetree.String(p.ElectionID),
		bytetree.Leaf(p.ElectionHash[:]),
		p.PublicKey.Tree(),
		bytetree.Node(qs...),
		keyList(p.Voters),
		keyList(p.Trustees),
		bytetree.Uint32(uint32(p.Threshold)),
		timeLeafSeconds(p.Opens),
		timeLeafSeconds(p.Closes),
		bytetree.Leaf(p.BoxKey[:]),
	)
}

// Marshal returns the encoding of §11.2. It refuses parameters that Validate refuses.
func (p *Params) Marshal() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p.tree().Encode(), nil
}

// Hash returns SHA-256 of the encoding of p (which must be valid).
func (p *Params) Hash() ([HashSize]byte, error) {
	b, err := p.Marshal()
	if err != nil {
		return [HashSize]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// ParseParams decodes and validates the encoding of §11.2.
func ParseParams(b []byte) (*Params, error) {
	t, err := parseTree(b, MaxParamsSize, 4, 11, "params")
	if err != nil {
		return nil, err
	}
	c := t.Children()
	if err := checkLabel(c[0], paramsLabel); err != nil {
		return nil, err
	}
	p := &Params{}
	if !c[1].IsLeaf() {
		return nil, malformed("params: election id is not a leaf")
	}
	p.ElectionID = string(c[1].Data())
	if p.ElectionHash, err = leafHash(c[2], "params: election hash"); err != nil {
		return nil, err
	}
	if p.PublicKey, err = verificatum.PublicKeyFromTree(c[3]); err != nil {
		return nil, fmt.Errorf("%w: params: public key: %w", ErrMalformed, err)
	}
	if c[4].IsLeaf() || c[4].Len() > MaxQuestions {
		return nil, malformed("params: questions: want a node of at most %d counts", MaxQuestions)
	}
	for i, q := range c[4].Children() {
		n, err := leafUint32(q, fmt.Sprintf("params: question %d", i))
		if err != nil {
			return nil, err
		}
		if n > MaxChoicesPerQuestion {
			return nil, malformed("params: question %d: %d choices", i, n)
		}
		p.Questions = append(p.Questions, int(n))
	}
	keyList := func(t *bytetree.Tree, max int, what string) ([]keys.IdentityPublicKey, error) {
		if t.IsLeaf() || t.Len() > max {
			return nil, fmt.Errorf("%w: params: %s: want a node of at most %d keys", ErrTooLarge, what, max)
		}
		ks := make([]keys.IdentityPublicKey, t.Len())
		for i, k := range t.Children() {
			if ks[i], err = leafKey(k, fmt.Sprintf("params: %s %d", what, i)); err != nil {
				return nil, err
			}
		}
		return ks, nil
	}
	if p.Voters, err = keyList(c[5], MaxVoters, "voter"); err != nil {
		return nil, err
	}
	if p.Trustees, err = keyList(c[6], MaxTrustees, "trustee"); err != nil {
		return nil, err
	}
	th, err := leafUint32(c[7], "params: threshold")
	if err != nil {
		return nil, err
	}
	if th > MaxTrustees {
		return nil, malformed("params: threshold %d", th)
	}
	p.Threshold = int(th)
	if p.Opens, err = leafSeconds(c[8], "params: opens"); err != nil {
		return nil, err
	}
	if p.Closes, err = leafSeconds(c[9], "params: closes"); err != nil {
		return nil, err
	}
	if p.BoxKey, err = leafKey(c[10], "params: box key"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// ballotContext is the election identifier given to pkg/vote/ballot for question q (§11.3):
// SHA-256(node(leaf("panoramix vote ballot context v1"), leaf(election id), leaf(election
// hash), leaf(uint32(q)))). It binds each ballot's proof to this election's definition and to
// its question, so that a ballot cannot be moved to another question or election.
func ballotContext(p *Params, q int) []byte {
	h := sha256.Sum256(bytetree.Node(
		bytetree.String("panoramix vote ballot context v1"),
		bytetree.String(p.ElectionID),
		bytetree.Leaf(p.ElectionHash[:]),
		bytetree.Uint32(uint32(q)),
	).Encode())
	return h[:]
}
