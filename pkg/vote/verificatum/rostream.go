package verificatum

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
)

// roStream computes RandomOracle(nbits, ρ | encoding) (§3.2) while the byte tree encoding is
// written piece by piece, so that long lists are hashed without building their trees: the
// memory of a proof stays proportional to the lists themselves.
type roStream struct {
	h     hash.Hash
	nbits int
	buf   []byte
}

// hashWindow is how many points are encoded (in parallel) before being hashed.
const hashWindow = 4096

func (s *Session) newRO(nbits int) *roStream {
	r := &roStream{h: sha256.New(), nbits: nbits}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(nbits))
	r.h.Write(n[:])
	r.h.Write(s.Rho[:])
	return r
}

func (r *roStream) node(children int) {
	var b [5]byte
	binary.BigEndian.PutUint32(b[1:], uint32(children))
	r.h.Write(b[:])
}

func (r *roStream) tree(t *bytetree.Tree) { r.h.Write(t.Encode()) }

func (r *roStream) point(e *group.Element) {
	r.buf = e.AppendEncoding(r.buf[:0])
	r.h.Write(r.buf)
}

// points writes node(e_0..e_{n-1}); the affine conversions (one field inversion per point) run
// on all cores, a window at a time.
func (r *roStream) points(es []*group.Element) {
	r.node(len(es))
	for lo := 0; lo < len(es); lo += hashWindow {
		win := es[lo:min(lo+hashWindow, len(es))]
		if cap(r.buf) < len(win)*group.EncodedLen {
			r.buf = make([]byte, 0, hashWindow*group.EncodedLen)
		}
		buf := r.buf[:len(win)*group.EncodedLen]
		group.Parallel(len(win), func(a, b int) {
			for i := a; i < b; i++ {
				win[i].AppendEncoding(buf[i*group.EncodedLen : i*group.EncodedLen : (i+1)*group.EncodedLen])
			}
		})
		r.h.Write(buf)
	}
}

// list writes node(node(U...), node(V...)) (§2.3).
func (r *roStream) list(l []Ciphertext) {
	us, vs := components(l)
	r.node(2)
	r.points(us)
	r.points(vs)
}

// sum returns the oracle's output.
func (r *roStream) sum() []byte {
	prg, err := NewPRG(r.h.Sum(nil))
	if err != nil {
		panic(err) // unreachable: a SHA-256 digest is a full seed
	}
	out := make([]byte, (r.nbits+7)/8)
	prg.Read(out)
	if rem := r.nbits % 8; rem != 0 {
		out[0] &= byte(1<<rem) - 1
	}
	return out
}

// batchingSeed is s of §5.2: RO(ρ | node(g, h, u, pk, w, w')).
func (s *Session) batchingSeed(h []*group.Element, pk PublicKey, u []*group.Element, in, out []Ciphertext) []byte {
	r := s.newRO(SeedLen * 8)
	r.node(6)
	r.point(group.Generator())
	r.points(h)
	r.points(u)
	r.node(2)
	r.point(group.Generator())
	r.point(pk.Y)
	r.list(in)
	r.list(out)
	return r.sum()
}

// challenge is v of §5.3: RO(ρ | node(leaf(s), node(B, A', B', C', D', F'))).
func (s *Session) challenge(seed []byte, p *ShuffleProof) []byte {
	r := s.newRO(s.VBits)
	r.node(2)
	r.tree(bytetree.Leaf(seed))
	r.node(6)
	r.points(p.B)
	r.point(p.APrime)
	r.points(p.BPrime)
	r.point(p.CPrime)
	r.point(p.DPrime)
	r.node(2)
	r.point(p.FPrime.U)
	r.point(p.FPrime.V)
	return r.sum()
}
