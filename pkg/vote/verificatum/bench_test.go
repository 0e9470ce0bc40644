package verificatum

import (
	"crypto/rand"
	"flag"
	"fmt"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
)

var benchSizes = []int{1000, 10000}

// benchLarge adds one larger size, e.g. -bench-n 100000 (about 2 minutes on 2 cores).
var benchLarge = flag.Int("bench-n", 0, "extra list size for the shuffle benchmarks")

func sizes() []int {
	if *benchLarge > 0 {
		return append(benchSizes, *benchLarge)
	}
	return benchSizes
}

type benchInput struct {
	s   *Session
	pk  PublicKey
	in  []Ciphertext
	h   []*group.Element
	out []Ciphertext
	p   *ShuffleProof
}

var benchCache = map[int]*benchInput{}

func benchSetup(b *testing.B, n int, prove bool) *benchInput {
	b.Helper()
	bi := benchCache[n]
	if bi == nil {
		s := testSession(b)
		pk, _ := testKey(b)
		in := make([]Ciphertext, n)
		group.Parallel(n, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				r, _ := group.RandomScalar(rand.Reader)
				in[i] = pk.enc(r)
			}
		})
		h, err := s.Generators(n)
		if err != nil {
			b.Fatal(err)
		}
		bi = &benchInput{s: s, pk: pk, in: in, h: h}
		benchCache[n] = bi
	}
	if prove && bi.p == nil {
		out, p, err := bi.s.Shuffle(rand.Reader, bi.h, bi.pk, bi.in)
		if err != nil {
			b.Fatal(err)
		}
		bi.out, bi.p = out, p
	}
	return bi
}

// BenchmarkGenerators derives the N independent generators (part of every verification).
func BenchmarkGenerators(b *testing.B) {
	for _, n := range sizes() {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s := testSession(b)
			for b.Loop() {
				if _, err := s.Generators(n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkShuffle re-encrypts, permutes and proves N ciphertexts (generators given).
func BenchmarkShuffle(b *testing.B) {
	for _, n := range sizes() {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			bi := benchSetup(b, n, false)
			for b.Loop() {
				if _, _, err := bi.s.Shuffle(rand.Reader, bi.h, bi.pk, bi.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyShuffle verifies a proof of shuffle of N ciphertexts (generators given).
func BenchmarkVerifyShuffle(b *testing.B) {
	for _, n := range sizes() {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			bi := benchSetup(b, n, true)
			for b.Loop() {
				if err := bi.s.VerifyShuffle(bi.h, bi.pk, bi.in, bi.out, bi.p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
