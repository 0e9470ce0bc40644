package node

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// scheduler holds packets for their delays in one timer heap (not a goroutine per packet) and
// hands each to out when it is due. Push never blocks; when the heap holds max items the packet
// is dropped (a flood must not exhaust memory), which the caller counts.
type scheduler[T any] struct {
	max int

	mu    sync.Mutex
	items itemHeap[T]
	seq   uint64
	wake  chan struct{}
}

type item[T any] struct {
	due time.Time
	seq uint64 // FIFO among equal due times
	v   T
}

type itemHeap[T any] []item[T]

func (h itemHeap[T]) Len() int { return len(h) }
func (h itemHeap[T]) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}
func (h itemHeap[T]) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *itemHeap[T]) Push(x any)   { *h = append(*h, x.(item[T])) }
func (h *itemHeap[T]) Pop() any {
	old := *h
	it := old[len(old)-1]
	var zero item[T]
	old[len(old)-1] = zero
	*h = old[:len(old)-1]
	return it
}

func newScheduler[T any](max int) *scheduler[T] {
	return &scheduler[T]{max: max, wake: make(chan struct{}, 1)}
}

// Push schedules v at due; false means the heap is full and v was dropped.
func (s *scheduler[T]) Push(due time.Time, v T) bool {
	s.mu.Lock()
	if len(s.items) >= s.max {
		s.mu.Unlock()
		return false
	}
	s.seq++
	heap.Push(&s.items, item[T]{due: due, seq: s.seq, v: v})
	first := s.items[0].seq == s.seq
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// Len is the number of held packets (the queue depth metric).
func (s *scheduler[T]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// Run sends due items to out until ctx is cancelled. Items still held at cancellation are
// returned, so the caller can count them as lost with the process.
func (s *scheduler[T]) Run(ctx context.Context, out chan<- T) []T {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		var ready []T
		for len(s.items) > 0 && !s.items[0].due.After(now) {
			ready = append(ready, heap.Pop(&s.items).(item[T]).v)
		}
		wait := time.Hour
		if len(s.items) > 0 {
			wait = s.items[0].due.Sub(now)
		}
		s.mu.Unlock()
		for _, v := range ready {
			select {
			case out <- v:
			case <-ctx.Done():
				return s.drain()
			}
		}
		if len(ready) > 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return s.drain()
		case <-s.wake:
		case <-timer.C:
		}
	}
}

func (s *scheduler[T]) drain() []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]T, 0, len(s.items))
	for _, it := range s.items {
		out = append(out, it.v)
	}
	s.items = nil
	return out
}
