package verificatum

import (
	"crypto/sha256"
	"fmt"
	"math/big"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
)

// Session holds what the proofs of one Verificatum session are bound to (§4.1).
type Session struct {
	Rho      [sha256.Size]byte // the session prefix ρ
	StatDist int               // bits
	VBits    int               // challenge length in bits (vbitlenro)
	EBits    int               // batching exponent length in bits (ebitlenro)

	// Progress, when not nil, is called while Shuffle and VerifyShuffle run, with the work
	// done so far and the total (units of about one exponentiation per ciphertext; the total
	// is 10N for Shuffle and 9N for VerifyShuffle), for progress bars. Calls come one at a
	// time, possibly from different goroutines, with done never decreasing; done == total on
	// the last call of a successful operation. It must return quickly.
	Progress func(done, total int)
}

// NewSession derives ρ from protInfo.xml and the auxiliary session identifier (§4.1):
// ρ = SHA-256(node(leaf(version), leaf(sid "." auxsid), uint32(statdist), uint32(vbitlenro),
// uint32(ebitlenro), leaf(prg), leaf(pgroup), leaf(rohash))).
func NewSession(p *ProtInfo, auxsid string) (*Session, error) {
	if err := checkAuxSID(auxsid); err != nil {
		return nil, err
	}
	t := bytetree.Node(
		bytetree.String(p.Version),
		bytetree.String(p.SID+"."+auxsid),
		bytetree.Uint32(uint32(p.StatDist)),
		bytetree.Uint32(uint32(p.VBitLenRO)),
		bytetree.Uint32(uint32(p.EBitLenRO)),
		bytetree.String(p.PRG),
		bytetree.String(p.PGroup),
		bytetree.String(p.ROHash),
	)
	return &Session{Rho: sha256.Sum256(t.Encode()), StatDist: p.StatDist, VBits: p.VBitLenRO, EBits: p.EBitLenRO}, nil
}

// MaxAuxSIDLen bounds the auxiliary session identifier.
const MaxAuxSIDLen = 64

// checkAuxSID applies Verificatum's rule: letters, digits and underscore only.
func checkAuxSID(s string) error {
	if s == "" || len(s) > MaxAuxSIDLen {
		return fmt.Errorf("verificatum: auxsid must have 1 to %d characters", MaxAuxSIDLen)
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return fmt.Errorf("verificatum: auxsid %q: only letters, digits and _ are allowed", s)
		}
	}
	return nil
}

// oracle returns RandomOracle(nbits, ρ | t).
func (s *Session) oracle(nbits int, t *bytetree.Tree) []byte {
	in := make([]byte, 0, len(s.Rho)+t.Size())
	in = append(in, s.Rho[:]...)
	return RandomOracle(nbits, t.AppendTo(in))
}

// Generators derives the n independent generators h_0..h_{n-1} (§4.2): a PRG seeded with
// RO(ρ | leaf("generators")), read by group.RandomElements.
func (s *Session) Generators(n int) ([]*group.Element, error) {
	prg, err := NewPRG(s.oracle(SeedLen*8, bytetree.String("generators")))
	if err != nil {
		return nil, err
	}
	return group.RandomElements(prg, n, s.StatDist)
}

// batchingVector derives e_0..e_{n-1} (§5.2) from the seed: each is ceil(EBits/8) PRG bytes,
// big-endian, masked to EBits bits.
func (s *Session) batchingVector(seed []byte, n int) ([]*group.Scalar, error) {
	prg, err := NewPRG(seed)
	if err != nil {
		return nil, err
	}
	e := make([]*group.Scalar, n)
	b := make([]byte, (s.EBits+7)/8)
	for i := range e {
		prg.Read(b)
		if r := s.EBits % 8; r != 0 {
			b[0] &= byte(1<<r) - 1
		}
		e[i] = group.ScalarFromBig(new(big.Int).SetBytes(b))
	}
	return e, nil
}
