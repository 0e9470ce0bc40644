package replay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math"
	"math/bits"
)

// Hard limits. They bound what a caller may ask for and what a file header may claim, so
// that a damaged or hostile file cannot make Open allocate gigabytes or loop for hours.
const (
	// MaxCapacity is the largest design capacity: 2^26 (67 million) tags, that is a
	// 20-minute epoch at 55,000 packets/s, eleven times the rate a mix must sustain.
	MaxCapacity = 1 << 26

	// MinFalsePositiveRate and MaxFalsePositiveRate bound the target rate p. Below 1e-9 the
	// filter needs more than 30 hash functions for no practical gain; above 1/2 it is no
	// filter at all.
	MinFalsePositiveRate = 1e-9
	MaxFalsePositiveRate = 0.5

	// MaxHashes bounds k. Size never picks more than 30 for p >= MinFalsePositiveRate.
	MaxHashes = 32

	// MaxBits bounds the bit array: 2^32 bits, 512 MiB. MaxCapacity at
	// MinFalsePositiveRate needs 2.9e9 bits, so every valid Config fits.
	MaxBits = 1 << 32

	// maxBitsPerTag bounds bits/capacity in a file header. Size uses at most 44 (p = 1e-9).
	maxBitsPerTag = 64

	// OverfillFactor bounds how far past its design capacity a filter may be filled: Add
	// refuses a fresh tag with ErrFull once the filter holds OverfillFactor*Capacity tags,
	// and Open refuses a file holding more records than that. At twice the capacity the
	// false-positive rate of a filter sized for p is about p^0.415 (3.2e-3 for p = 1e-6).
	OverfillFactor = 2
)

// Size returns the number of bits m (a multiple of 64) and of hash functions k of the
// smallest Bloom filter whose false-positive rate after capacity insertions is at most
// fpRate, by the usual approximation FalsePositiveRate(m, k, n) = (1 - e^(-k*n/m))^k.
func Size(capacity uint64, fpRate float64) (nbits uint64, hashes uint32, err error) {
	if capacity < 1 || capacity > MaxCapacity {
		return 0, 0, fmt.Errorf("replay: capacity %d out of range [1, %d]", capacity, MaxCapacity)
	}
	if !(fpRate >= MinFalsePositiveRate && fpRate <= MaxFalsePositiveRate) { // also refuses NaN
		return 0, 0, fmt.Errorf("replay: false-positive rate %g out of range [%g, %g]",
			fpRate, MinFalsePositiveRate, MaxFalsePositiveRate)
	}
	// The real optimum k* = log2(1/p); try the two integers around it and keep the smaller
	// filter. For a fixed k the smallest m reaching p solves (1 - e^(-k*n/m))^k = p.
	kopt := math.Log2(1 / fpRate)
	best := uint64(0)
	for _, kf := range []float64{math.Floor(kopt), math.Ceil(kopt)} {
		k := uint32(max(1, kf))
		m := bitsFor(capacity, fpRate, k)
		if best == 0 || m < best {
			best, hashes = m, k
		}
	}
	return best, hashes, nil
}

// bitsFor returns the smallest multiple of 64 bits m with FalsePositiveRate(m, k, n) <= p.
func bitsFor(n uint64, p float64, k uint32) uint64 {
	kf := float64(k)
	m := uint64(math.Ceil(-kf * float64(n) / math.Log1p(-math.Pow(p, 1/kf))))
	m = max(64, (m+63)&^63)
	// Floating-point rounding can leave the closed form a hair short; step up.
	for FalsePositiveRate(m, k, n) > p {
		m += 64
	}
	return m
}

// FalsePositiveRate is the probability that a Bloom filter of nbits bits and hashes hash
// functions holding count distinct tags reports a fresh random tag as seen:
// (1 - e^(-k*count/m))^k. It is the standard approximation; for the filter sizes used here
// (m of thousands of bits or more) it is within a fraction of a percent of the exact value.
func FalsePositiveRate(nbits uint64, hashes uint32, count uint64) float64 {
	if nbits == 0 {
		return 1
	}
	x := -float64(hashes) * float64(count) / float64(nbits)
	return math.Pow(-math.Expm1(x), float64(hashes))
}

// bloom is the bit array. It is not safe for concurrent use; Filter guards it.
type bloom struct {
	words   []uint64
	nbits   uint64
	hashes  uint32
	setBits uint64 // number of 1 bits, for the fill level
}

func newBloom(nbits uint64, hashes uint32) *bloom {
	return &bloom{words: make([]uint64, nbits/64), nbits: nbits, hashes: hashes}
}

// digest is the keyed hash of a tag from which the k bit indices are derived.
type digest struct{ h1, h2 uint64 }

// keyedHash is HMAC-SHA256 under a filter's key. A random key per filter makes the bit
// indices of a tag unpredictable to whoever chose the tag, so a packet's creator cannot
// grind tags that collide in this filter (and so cannot make a mix drop chosen honest
// packets, or fill the filter faster than one packet per tag). Not safe for concurrent use.
type keyedHash struct {
	h   hash.Hash
	buf [TagSize + sha256.Size]byte // scratch, so that nothing escapes through the interface
}

func newKeyedHash(key *[KeySize]byte) *keyedHash {
	return &keyedHash{h: hmac.New(sha256.New, key[:])}
}

func (k *keyedHash) digest(tag *Tag) digest {
	in, out := k.buf[:TagSize], k.buf[TagSize:TagSize]
	copy(in, tag[:])
	k.h.Reset()
	k.h.Write(in)
	sum := k.h.Sum(out)
	return digest{
		h1: binary.LittleEndian.Uint64(sum[0:8]),
		// Odd, so that h1 + i*h2 takes k distinct values modulo 2^64.
		h2: binary.LittleEndian.Uint64(sum[8:16]) | 1,
	}
}

// indexes computes the k bit indices by double hashing (Kirsch and Mitzenmacher, "Less
// Hashing, Same Performance", 2006): g_i = h1 + i*h2 modulo 2^64, mapped onto [0, m) by the
// high half of g_i*m (Lemire's multiply-shift reduction, no division and no modulo bias
// beyond 2^-64*m).
func (b *bloom) indexes(d digest, out *[MaxHashes]uint64) []uint64 {
	idx := out[:b.hashes]
	g := d.h1
	for i := range idx {
		idx[i], _ = bits.Mul64(g, b.nbits)
		g += d.h2
	}
	return idx
}

func (b *bloom) has(idx []uint64) bool {
	for _, i := range idx {
		if b.words[i/64]&(1<<(i%64)) == 0 {
			return false
		}
	}
	return true
}

func (b *bloom) set(idx []uint64) {
	for _, i := range idx {
		w, m := &b.words[i/64], uint64(1)<<(i%64)
		if *w&m == 0 {
			*w |= m
			b.setBits++
		}
	}
}
