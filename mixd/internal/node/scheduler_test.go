package node

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

func TestSchedulerOrderAndDelay(t *testing.T) {
	s := newScheduler[int](1000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan int, 100)
	go s.Run(ctx, out)
	start := time.Now()
	delays := map[int]time.Duration{}
	for i := range 50 {
		d := time.Duration(rand.IntN(200)) * time.Millisecond
		delays[i] = d
		if !s.Push(start.Add(d), i) {
			t.Fatal("push refused")
		}
	}
	var last time.Duration
	for range 50 {
		v := <-out
		got := time.Since(start)
		if got < delays[v] {
			t.Fatalf("item %d released after %v, before its delay %v", v, got, delays[v])
		}
		if delays[v] < last {
			t.Fatalf("item %d (delay %v) released after an item with delay %v", v, delays[v], last)
		}
		last = delays[v]
	}
}

func TestSchedulerBoundAndDrain(t *testing.T) {
	s := newScheduler[int](3)
	far := time.Now().Add(time.Hour)
	for i := range 3 {
		if !s.Push(far, i) {
			t.Fatal("push refused below the bound")
		}
	}
	if s.Push(far, 4) {
		t.Fatal("push accepted above the bound")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []int)
	go func() { done <- s.Run(ctx, make(chan int)) }()
	cancel()
	if left := <-done; len(left) != 3 || s.Len() != 0 {
		t.Fatalf("drained %d, left %d", len(left), s.Len())
	}
}
