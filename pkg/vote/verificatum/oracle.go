package verificatum

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// SeedLen is the seed length of the SHA-256 PRG in bytes (§3.1); seeds derived from the random
// oracle have SeedLen*8 bits.
const SeedLen = sha256.Size

// PRG is Verificatum's SHA-256-based pseudo-random generator (§3.1): the output is
// SHA-256(seed | uint32_be(0)) | SHA-256(seed | uint32_be(1)) | ..., consumed byte by byte.
// It is an io.Reader that never fails.
type PRG struct {
	seed    [SeedLen]byte
	counter uint32
	block   [sha256.Size]byte
	used    int
}

// NewPRG returns a PRG seeded with seed. A seed longer than SeedLen is folded in by XOR
// (byte i into position i mod SeedLen); a shorter one is refused.
func NewPRG(seed []byte) (*PRG, error) {
	if len(seed) < SeedLen {
		return nil, fmt.Errorf("verificatum: prg seed of %d bytes, need at least %d", len(seed), SeedLen)
	}
	p := &PRG{used: sha256.Size}
	for i, b := range seed {
		p.seed[i%SeedLen] ^= b
	}
	return p, nil
}

// Read fills b with the next output bytes.
func (p *PRG) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		if p.used == len(p.block) {
			var in [SeedLen + 4]byte
			copy(in[:], p.seed[:])
			binary.BigEndian.PutUint32(in[SeedLen:], p.counter)
			p.counter++
			p.block = sha256.Sum256(in[:])
			p.used = 0
		}
		c := copy(b[n:], p.block[p.used:])
		p.used += c
		n += c
	}
	return n, nil
}

// RandomOracle is Verificatum's random oracle with an output of nbits bits (§3.2):
// d = SHA-256(uint32_be(nbits) | input), then the first ceil(nbits/8) bytes of the PRG seeded
// with d, the first byte masked to nbits mod 8 bits when that is not 0.
func RandomOracle(nbits int, input []byte) []byte {
	h := sha256.New()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(nbits))
	h.Write(n[:])
	h.Write(input)
	prg, err := NewPRG(h.Sum(nil))
	if err != nil {
		panic(err) // unreachable: a SHA-256 digest is a full seed
	}
	out := make([]byte, (nbits+7)/8)
	prg.Read(out)
	if r := nbits % 8; r != 0 {
		out[0] &= byte(1<<r) - 1
	}
	return out
}
