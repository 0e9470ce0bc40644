package primitives

import (
	"crypto/ecdh"
	"crypto/rand"
	"syscall"
	"testing"

	"filippo.io/edwards25519"
)

// cpuNanos is the process's CPU time; the benchmarks report it per operation (cpu-ns/op)
// because wall time on the shared project machine moves with other processes' load.
func cpuNanos(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func reportCPU(b *testing.B, start int64) {
	b.ReportMetric(float64(cpuNanos(b)-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkX25519 is the floor of an unwrap: two of these per hop (§9 steps 3 and 8).
func BenchmarkX25519(b *testing.B) {
	var k, u, out [32]byte
	rand.Read(k[:])
	u[0] = 9
	if err := X25519(&u, &k, &u); err != nil {
		b.Fatal(err)
	}
	c0 := cpuNanos(b)
	for b.Loop() {
		if err := X25519(&out, &k, &u); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, c0)
}

// BenchmarkX25519Options compares the constant-time X25519 implementations that resolve in this
// module, for the choice X25519 documents: circl's (what X25519 uses), the ladder over
// filippo.io/edwards25519/field (what it used before), and crypto/ecdh, which can only multiply
// by a private key it has built, at the cost of a base-point multiplication per key; the
// sender's unclamped multiplication (ScalarMultReduced) and the fixed-base one (BaseMultiples,
// per point for a batch of five) are measured alongside.
func BenchmarkX25519Options(b *testing.B) {
	var k, u, out [32]byte
	rand.Read(k[:])
	u[0] = 9
	if err := X25519(&u, &k, &u); err != nil {
		b.Fatal(err)
	}
	b.Run("circl", func(b *testing.B) {
		c0 := cpuNanos(b)
		for b.Loop() {
			X25519(&out, &k, &u)
		}
		reportCPU(b, c0)
	})
	b.Run("field-ladder", func(b *testing.B) {
		c0 := cpuNanos(b)
		for b.Loop() {
			kc := k
			kc[0] &= 248
			kc[31] = kc[31]&127 | 64
			ladder(&out, &kc, &u)
		}
		reportCPU(b, c0)
	})
	b.Run("crypto-ecdh", func(b *testing.B) {
		pub, err := ecdh.X25519().NewPublicKey(u[:])
		if err != nil {
			b.Fatal(err)
		}
		c0 := cpuNanos(b)
		for b.Loop() {
			priv, err := ecdh.X25519().NewPrivateKey(k[:])
			if err != nil {
				b.Fatal(err)
			}
			if _, err := priv.ECDH(pub); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, c0)
	})
	c := ClampedScalar(k[:])
	b.Run("reduced", func(b *testing.B) {
		c0 := cpuNanos(b)
		for b.Loop() {
			ScalarMultReduced(&out, c, &u)
		}
		reportCPU(b, c0)
	})
	b.Run("base-batch5", func(b *testing.B) {
		ks := []edwards25519.Scalar{*c, *c, *c, *c, *c}
		dst := make([][32]byte, 5)
		c0 := cpuNanos(b)
		for b.Loop() {
			BaseMultiples(dst, ks)
		}
		reportCPU(b, c0)
		b.ReportMetric(float64(cpuNanos(b)-c0)/float64(5*b.N), "cpu-ns/point")
	})
}

func BenchmarkLioness(b *testing.B) {
	for _, n := range []int{2048 + 16, 16384 + 16} {
		key := make([]byte, LionessKeySize)
		rand.Read(key)
		block := make([]byte, n)
		l := NewLioness(key)
		b.Run(map[int]string{2064: "2KiB", 16400: "16KiB"}[n], func(b *testing.B) {
			b.SetBytes(int64(n))
			c0 := cpuNanos(b)
			for b.Loop() {
				l.Decrypt(block)
			}
			reportCPU(b, c0)
		})
	}
}
