// Package ballot implements encrypted ballots (docs/spec/vote.md §7): a choice encrypted under
// the election's ElGamal key, with a Schnorr proof of knowledge of the encryption randomness
// bound to the election and to the voter's credential, so that a ballot cannot be copied or
// re-randomised and cast under another credential.
package ballot

import (
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// Limits (§7.1).
const (
	// MaxChoices bounds the choice values: decoding a plaintext searches [0, MaxChoices).
	MaxChoices = 1 << 16
	// MaxElectionIDLen and MaxCredentialLen bound the strings bound into the proof.
	MaxElectionIDLen = 64
	MaxCredentialLen = 64
	// MaxEncodedLen is the exact size of an encoded ballot: node(node(u, v), c, z).
	MaxEncodedLen = 5 + (5 + 2*81) + 2*(5+group.ScalarLen)
)

// proofDomain separates this proof's hashes from every other use of SHA-512 in the project.
const proofDomain = "panoramix vote ballot proof v1"

// ErrInvalid is wrapped by every refusal of a ballot.
var ErrInvalid = errors.New("ballot: invalid")

// Ballot is an encrypted choice with its proof: (u, v) = (g^r, y^r g^(choice+1)) and a Schnorr
// proof (c, z) of knowledge of r.
type Ballot struct {
	Ciphertext verificatum.Ciphertext
	C, Z       *group.Scalar
}

// Encode returns node(node(u, v), c, z).
func (b *Ballot) Encode() []byte {
	return bytetree.Node(b.Ciphertext.Tree(), b.C.Tree(), b.Z.Tree()).Encode()
}

// Decode parses an encoded ballot strictly (exact size, canonical points and scalars). It does
// not check the proof; use Verify.
func Decode(p []byte) (*Ballot, error) {
	if len(p) != MaxEncodedLen {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrInvalid, len(p), MaxEncodedLen)
	}
	t, err := bytetree.Parse(p, bytetree.Limits{MaxBytes: MaxEncodedLen, MaxDepth: 4})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if t.IsLeaf() || t.Len() != 3 {
		return nil, fmt.Errorf("%w: want node(ciphertext, c, z)", ErrInvalid)
	}
	ct, err := verificatum.CiphertextFromTree(t.Children()[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	c, err := group.ScalarFromTree(t.Children()[1])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	z, err := group.ScalarFromTree(t.Children()[2])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return &Ballot{Ciphertext: ct, C: c, Z: z}, nil
}

// EncodeChoice maps a choice to the group element g^(choice+1) (never the identity).
func EncodeChoice(choice int) (*group.Element, error) {
	if choice < 0 || choice >= MaxChoices {
		return nil, fmt.Errorf("ballot: choice %d outside [0, %d)", choice, MaxChoices)
	}
	return new(group.Element).BaseExp(group.ScalarFromUint(uint(choice + 1))), nil
}

// DecodeChoice inverts EncodeChoice by search (public plaintexts only).
func DecodeChoice(m *group.Element) (int, error) {
	acc := group.Generator()
	for c := 0; c < MaxChoices; c++ {
		if acc.Equal(m) {
			return c, nil
		}
		acc.Mul(acc, group.Generator())
	}
	return 0, fmt.Errorf("ballot: plaintext is not an encoded choice")
}

func checkContext(electionID, credential []byte) error {
	if len(electionID) == 0 || len(electionID) > MaxElectionIDLen {
		return fmt.Errorf("ballot: election id of %d bytes, want 1 to %d", len(electionID), MaxElectionIDLen)
	}
	if len(credential) == 0 || len(credential) > MaxCredentialLen {
		return fmt.Errorf("ballot: credential of %d bytes, want 1 to %d", len(credential), MaxCredentialLen)
	}
	return nil
}

// challenge is the Fiat-Shamir challenge (§7.1): SHA-512 of the byte tree
// node(leaf(domain), leaf(election id), leaf(credential), pk, node(u, v), a), reduced mod q
// (512 bits reduced mod a 256-bit q are within 2^-256 of uniform).
func challenge(electionID, credential []byte, pk verificatum.PublicKey, ct verificatum.Ciphertext, a *group.Element) *group.Scalar {
	t := bytetree.Node(bytetree.String(proofDomain), bytetree.Leaf(electionID), bytetree.Leaf(credential),
		pk.Tree(), ct.Tree(), a.Tree())
	d := sha512.Sum512(t.Encode())
	return group.ScalarFromBig(new(big.Int).SetBytes(d[:]))
}

// Encrypt encrypts choice under pk for the voter holding credential (the voter's public
// credential bytes, e.g. an Ed25519 public key) in election electionID. rand is crypto/rand in
// production.
func Encrypt(rand io.Reader, electionID, credential []byte, pk verificatum.PublicKey, choice int) (*Ballot, error) {
	if err := checkContext(electionID, credential); err != nil {
		return nil, err
	}
	m, err := EncodeChoice(choice)
	if err != nil {
		return nil, err
	}
	r, err := group.RandomScalar(rand)
	if err != nil {
		return nil, err
	}
	defer r.Wipe()
	t, err := group.RandomScalar(rand)
	if err != nil {
		return nil, err
	}
	defer t.Wipe()
	ct := verificatum.Ciphertext{
		U: new(group.Element).BaseExp(r),
		V: new(group.Element).Mul(new(group.Element).Exp(pk.Y, r), m),
	}
	c := challenge(electionID, credential, pk, ct, new(group.Element).BaseExp(t))
	z := new(group.Scalar).Mul(c, r)
	z.Add(z, t)
	return &Ballot{Ciphertext: ct, C: c, Z: z}, nil
}

// Verify checks the ballot's proof for this election and credential: with a = g^z u^-c, the
// challenge must equal c. A ballot copied (or re-randomised) under another credential fails.
func (b *Ballot) Verify(electionID, credential []byte, pk verificatum.PublicKey) error {
	if err := checkContext(electionID, credential); err != nil {
		return err
	}
	if b.Ciphertext.U.IsIdentity() {
		return fmt.Errorf("%w: first component is the identity", ErrInvalid)
	}
	a := new(group.Element).Exp(b.Ciphertext.U, new(group.Scalar).Neg(b.C))
	a.Mul(a, new(group.Element).BaseExp(b.Z))
	if !challenge(electionID, credential, pk, b.Ciphertext, a).Equal(b.C) {
		return fmt.Errorf("%w: proof of knowledge does not verify for this election and credential", ErrInvalid)
	}
	return nil
}
