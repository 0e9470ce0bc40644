package trustee

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

func benchList(b *testing.B, n int) ([]verificatum.Ciphertext, *group.Scalar, *group.Element) {
	b.Helper()
	x, err := group.RandomScalar(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	list := make([]verificatum.Ciphertext, n)
	group.Parallel(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			r, _ := group.RandomScalar(rand.Reader)
			list[i] = verificatum.Ciphertext{U: new(group.Element).BaseExp(r), V: group.Generator()}
		}
	})
	return list, x, new(group.Element).BaseExp(x)
}

// BenchmarkDecryptionShare: one trustee's factors and proof, and their verification, for N
// ciphertexts.
func BenchmarkDecryptionShare(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		list, x, y := benchList(b, n)
		b.Run(fmt.Sprintf("decrypt/n=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := Decrypt(rand.Reader, electionID, 1, x, list); err != nil {
					b.Fatal(err)
				}
			}
		})
		s, err := Decrypt(rand.Reader, electionID, 1, x, list)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("verify/n=%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := s.Verify(electionID, y, list); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
