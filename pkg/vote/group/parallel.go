package group

import (
	"runtime"
	"sync"
)

// minChunk keeps goroutine overhead small next to the ~40 µs of a scalar multiplication.
const minChunk = 16

// Parallel calls f on disjoint subranges [lo, hi) covering [0, n), on GOMAXPROCS goroutines.
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
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() { defer wg.Done(); f(lo, hi) }()
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
