package primitives

import (
	"crypto/rand"
	"testing"
)

// BenchmarkX25519 is the floor of an unwrap: two of these per hop (§9 steps 3 and 8).
func BenchmarkX25519(b *testing.B) {
	var k, u, out [32]byte
	rand.Read(k[:])
	u[0] = 9
	if err := X25519(&u, &k, &u); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := X25519(&out, &k, &u); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLioness(b *testing.B) {
	for _, n := range []int{2048 + 16, 16384 + 16} {
		key := make([]byte, LionessKeySize)
		rand.Read(key)
		block := make([]byte, n)
		l := NewLioness(key)
		b.Run(map[int]string{2064: "2KiB", 16400: "16KiB"}[n], func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				l.Decrypt(block)
			}
		})
	}
}
