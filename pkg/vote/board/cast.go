package board

import (
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/ballot"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
)

const castLabel = "panoramix vote cast v1"

// MaxCastSize is the size of the largest encoded cast (§11.3): MaxQuestions ballots.
const MaxCastSize = 5 + (5 + (5 + len(castLabel)) + (5 + 16) + (5 + HashSize) + (5 + keys.KeySize) +
	5 + MaxQuestions*ballot.MaxEncodedLen) + (5 + SignatureSize)

// CastSize returns the exact size of a cast in an election with this many questions and an
// election id of idLen bytes.
func CastSize(questions, idLen int) int {
	return MaxCastSize - (MaxQuestions-questions)*ballot.MaxEncodedLen - (16 - idLen)
}

// Cast is what a voter sends through the mixnet to the ballot box (§11.3): one ballot per
// question, each bound to the election and the question, signed by the voter's credential.
type Cast struct {
	ElectionID   string
	ElectionHash [HashSize]byte
	Credential   keys.IdentityPublicKey
	Ballots      []*ballot.Ballot
	Signature    [SignatureSize]byte
}

// body is the signed part: node(label, id, election hash, credential, node(ballots)).
func (c *Cast) body() *bytetree.Tree {
	bs := make([]*bytetree.Tree, len(c.Ballots))
	for i, b := range c.Ballots {
		bs[i] = bytetree.Node(b.Ciphertext.Tree(), b.C.Tree(), b.Z.Tree())
	}
	return bytetree.Node(
		bytetree.String(castLabel),
		bytetree.String(c.ElectionID),
		bytetree.Leaf(c.ElectionHash[:]),
		bytetree.Leaf(c.Credential[:]),
		bytetree.Node(bs...),
	)
}

// Marshal returns node(body, leaf(signature)).
func (c *Cast) Marshal() []byte {
	return bytetree.Node(c.body(), bytetree.Leaf(c.Signature[:])).Encode()
}

// Hash returns SHA-256 of the cast's encoding: the box recognises a retransmission by it.
func (c *Cast) Hash() [HashSize]byte { return sha256.Sum256(c.Marshal()) }

// NewCast encrypts choices (one per question, choices[q] in [0, p.Questions[q])) for the voter
// holding credential and signs the result. rand is crypto/rand in production.
func NewCast(rand io.Reader, p *Params, credential *keys.IdentityPrivateKey, choices []int) (*Cast, error) {
	if len(choices) != len(p.Questions) {
		return nil, fmt.Errorf("board: %d choices for %d questions", len(choices), len(p.Questions))
	}
	c := &Cast{ElectionID: p.ElectionID, ElectionHash: p.ElectionHash, Credential: credential.Public()}
	for q, choice := range choices {
		if choice < 0 || choice >= p.Questions[q] {
			return nil, fmt.Errorf("board: question %d: choice %d outside [0, %d)", q, choice, p.Questions[q])
		}
		b, err := ballot.Encrypt(rand, ballotContext(p, q), c.Credential[:], p.PublicKey, choice)
		if err != nil {
			return nil, fmt.Errorf("board: question %d: %w", q, err)
		}
		c.Ballots = append(c.Ballots, b)
	}
	copy(c.Signature[:], credential.Sign(c.body().Encode()))
	return c, nil
}

// ParseCast decodes a cast strictly: size limit, shape, canonical points and scalars. It checks
// no signature or proof; use Check.
func ParseCast(b []byte) (*Cast, error) {
	t, err := parseTree(b, MaxCastSize, 7, 2, "cast")
	if err != nil {
		return nil, err
	}
	body := t.Children()[0]
	if body.IsLeaf() || body.Len() != 5 {
		return nil, malformed("cast: want a body of 5 children")
	}
	bc := body.Children()
	if err := checkLabel(bc[0], castLabel); err != nil {
		return nil, err
	}
	c := &Cast{}
	if !bc[1].IsLeaf() || !ElectionIDPattern.Match(bc[1].Data()) {
		return nil, malformed("cast: election id is not of the form %s", ElectionIDPattern)
	}
	c.ElectionID = string(bc[1].Data())
	if c.ElectionHash, err = leafHash(bc[2], "cast: election hash"); err != nil {
		return nil, err
	}
	if c.Credential, err = leafKey(bc[3], "cast: credential"); err != nil {
		return nil, err
	}
	if bc[4].IsLeaf() || bc[4].Len() == 0 || bc[4].Len() > MaxQuestions {
		return nil, malformed("cast: want a node of 1 to %d ballots", MaxQuestions)
	}
	for q, bt := range bc[4].Children() {
		bl, err := ballot.Decode(bt.Encode())
		if err != nil {
			return nil, fmt.Errorf("%w: cast: ballot %d: %w", ErrMalformed, q, err)
		}
		c.Ballots = append(c.Ballots, bl)
	}
	if c.Signature, err = leafSignature(t.Children()[1], "cast: signature"); err != nil {
		return nil, err
	}
	return c, nil
}

// Check decides whether the box accepts c for election p (§11.3): the election id and hash,
// one ballot per question, the credential on the voter list, the voter's signature and every
// ballot's proof under the context of its question. The error wraps ErrWrongElection,
// ErrMalformed, ErrNotEligible, ErrBadSignature or ErrBadProof and names what failed.
func (c *Cast) Check(p *Params) error {
	switch {
	case c.ElectionID != p.ElectionID:
		return fail(ErrWrongElection, "cast for election %q, not %q", c.ElectionID, p.ElectionID)
	case c.ElectionHash != p.ElectionHash:
		return fail(ErrWrongElection, "cast for another definition of election %q (election hash differs)", p.ElectionID)
	case len(c.Ballots) != len(p.Questions):
		return fmt.Errorf("%w: %d ballots for %d questions", ErrMalformed, len(c.Ballots), len(p.Questions))
	case !p.Eligible(c.Credential):
		return fail(ErrNotEligible, "credential %s is not on the voter list", short(c.Credential))
	case !c.Credential.Verify(c.body().Encode(), c.Signature[:]):
		return fail(ErrBadSignature, "voter signature invalid for credential %s", short(c.Credential))
	}
	for q, b := range c.Ballots {
		if err := b.Verify(ballotContext(p, q), c.Credential[:], p.PublicKey); err != nil {
			return fail(ErrBadProof, "ballot %d proof invalid for credential %s: copied or altered ballot", q, short(c.Credential))
		}
	}
	return nil
}
