package verificatum

import (
	"crypto/rand"
	"flag"
	"fmt"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/internal/usage"
)

// benchSizes are the list sizes of issue 8's acceptance; under -short only the first two run.
var benchSizes = []int{1000, 10000, 100000, 1000000}

// benchExtra adds one more size, e.g. -bench-n 300000.
var benchExtra = flag.Int("bench-n", 0, "extra list size for the shuffle benchmarks")

func sizes() []int {
	s := benchSizes
	if testing.Short() {
		s = s[:2]
	}
	if *benchExtra > 0 {
		s = append(s[:len(s):len(s)], *benchExtra)
	}
	return s
}

// benchState is one size's input and what the sub-benchmarks pass on to each other.
type benchState struct {
	s   *Session
	pk  PublicKey
	in  []Ciphertext
	h   []*group.Element
	out []Ciphertext
	p   *ShuffleProof
}

func newBenchState(b *testing.B, n int) *benchState {
	b.Helper()
	pk, _ := testKey(b)
	in := make([]Ciphertext, n)
	group.Parallel(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			r, err := group.RandomScalar(rand.Reader)
			if err != nil {
				panic(err)
			}
			in[i] = pk.enc(r)
		}
	})
	return &benchState{s: testSession(b), pk: pk, in: in}
}

func (st *benchState) generators(b *testing.B) []*group.Element {
	if st.h == nil {
		h, err := st.s.Generators(len(st.in))
		if err != nil {
			b.Fatal(err)
		}
		st.h = h
	}
	return st.h
}

func (st *benchState) proof(b *testing.B) ([]Ciphertext, *ShuffleProof) {
	if st.p == nil {
		out, p, err := st.s.Shuffle(rand.Reader, st.generators(b), st.pk, st.in)
		if err != nil {
			b.Fatal(err)
		}
		st.out, st.p = out, p
	}
	return st.out, st.p
}

// measure runs the benchmark loop body and reports, besides wall time, the process's CPU time
// per op (cpu-s/op: user plus system, all threads; steadier than wall time on a shared machine)
// and its peak resident memory during the loop (peak-MB: inputs and everything else resident
// included).
func measure(b *testing.B, body func()) {
	b.Helper()
	memOK := usage.Reset() == nil
	cpu0, cpuErr := usage.CPU()
	for b.Loop() {
		body()
	}
	if cpu1, err := usage.CPU(); err == nil && cpuErr == nil {
		b.ReportMetric((cpu1-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	}
	if memOK {
		if peak, err := usage.Peak(); err == nil {
			b.ReportMetric(float64(peak)/(1<<20), "peak-MB")
		}
	}
}

// BenchmarkShuffle measures, for each list size N, one mixer's work on N ciphertexts (P-256,
// width 1, both cores), in the order a mix runs it:
//
//	generators  derive the N independent generators (§4.2; prover and verifier both do it)
//	prove       re-encrypt, permute and prove (§5.5), generators given
//	verify      verify that proof (§5.4), generators given
//
// N = 10^5 and 10^6 are skipped under -short; narrow with e.g. -bench 'Shuffle/n=1000000/'.
func BenchmarkShuffle(b *testing.B) {
	for _, n := range sizes() {
		var st *benchState
		state := func(b *testing.B) *benchState {
			if st == nil {
				st = newBenchState(b, n)
			}
			return st
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.Run("generators", func(b *testing.B) {
				st := state(b)
				measure(b, func() {
					st.h = nil
					st.generators(b)
				})
			})
			b.Run("prove", func(b *testing.B) {
				st := state(b)
				h := st.generators(b)
				measure(b, func() {
					out, p, err := st.s.Shuffle(rand.Reader, h, st.pk, st.in)
					if err != nil {
						b.Fatal(err)
					}
					st.out, st.p = out, p
				})
			})
			b.Run("verify", func(b *testing.B) {
				st := state(b)
				h := st.generators(b)
				out, p := st.proof(b)
				measure(b, func() {
					if err := st.s.VerifyShuffle(h, st.pk, st.in, out, p); err != nil {
						b.Fatal(err)
					}
				})
			})
		})
		st = nil // free this size's lists before the next, larger one
	}
}
