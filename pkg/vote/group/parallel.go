package group

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// minChunk keeps goroutine overhead small next to the ~40 µs of a scalar multiplication.
const minChunk = 16

// Parallel calls f on disjoint subranges [lo, hi) covering [0, n), on GOMAXPROCS goroutines.
// The range is cut into many small chunks taken from a shared counter, so that a core slowed
// by other processes does not leave the others idle at the end.
func Parallel(n int, f func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if workers > (n+minChunk-1)/minChunk {
		workers = (n + minChunk - 1) / minChunk
	}
	if workers <= 1 {
		if n > 0 {
			f(0, n)
		}
		return
	}
	chunk := max(minChunk, n/(workers*32))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(int64(chunk))) - chunk
				if lo >= n {
					return
				}
				f(lo, min(lo+chunk, n))
			}
		}()
	}
	wg.Wait()
}

// MultiExp returns prod bases[i]^exps[i], computed on all cores. It panics if the lengths differ.
func MultiExp(bases []*Element, exps []*Scalar) *Element {
	if len(bases) != len(exps) {
		panic("group: MultiExp length mismatch")
	}
	var mu sync.Mutex
	acc := Identity()
	Parallel(len(bases), func(lo, hi int) {
		part := Identity()
		t := new(Element)
		for i := lo; i < hi; i++ {
			part.Mul(part, t.Exp(bases[i], exps[i]))
		}
		mu.Lock()
		acc.Mul(acc, part)
		mu.Unlock()
	})
	return acc
}
