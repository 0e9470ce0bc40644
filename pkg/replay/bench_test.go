package replay

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// benchConfig is a realistic shape: p = 1e-6 (k = 20), a million tags per filter. The
// benchmarks open a new filter each time one reaches its capacity, with the timer stopped.
var benchConfig = Config{Capacity: 1 << 20, FalsePositiveRate: 1e-6}

// counterTag makes distinct tags cheaply; the keyed hash spreads them like random ones.
func counterTag(i uint64) Tag {
	var t Tag
	binary.LittleEndian.PutUint64(t[:], i)
	t[31] = 0xa5
	return t
}

type rollingFilter struct {
	b   *testing.B
	dir string
	n   int
	f   *Filter
}

func newRollingFilter(b *testing.B) *rollingFilter {
	r := &rollingFilter{b: b, dir: b.TempDir()}
	r.roll()
	b.Cleanup(func() { r.f.Remove() })
	return r
}

func (r *rollingFilter) roll() {
	if r.f != nil {
		r.f.Remove()
	}
	r.n++
	f, err := Open(filepath.Join(r.dir, fmt.Sprint(r.n)), benchConfig)
	if err != nil {
		r.b.Fatal(err)
	}
	r.f = f
}

// ensure makes room for n more tags.
func (r *rollingFilter) ensure(n uint64) {
	if r.f.Stats().Count+n > benchConfig.Capacity {
		r.b.StopTimer()
		r.roll()
		r.b.StartTimer()
	}
}

// BenchmarkAdd is the in-memory test-and-insert of one fresh tag (the record is buffered,
// never written).
func BenchmarkAdd(b *testing.B) {
	r := newRollingFilter(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range uint64(b.N) {
		if i%4096 == 0 {
			r.ensure(4096)
		}
		if fresh, err := r.f.Add(counterTag(i)); err != nil || !fresh {
			b.Fatal(fresh, err)
		}
	}
}

// BenchmarkAddDuplicate is the check of a replayed tag.
func BenchmarkAddDuplicate(b *testing.B) {
	r := newRollingFilter(b)
	const held = 1 << 16
	for i := range uint64(held) {
		r.f.Add(counterTag(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range uint64(b.N) {
		if fresh, err := r.f.Add(counterTag(i % held)); err != nil || fresh {
			b.Fatal(fresh, err)
		}
	}
}

// BenchmarkAddSync adds a batch of fresh tags and makes them durable with one Sync: one
// op is one batch; tags/s is the durable throughput.
func BenchmarkAddSync(b *testing.B) {
	for _, batch := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			r := newRollingFilter(b)
			var next uint64
			b.ResetTimer()
			for range b.N {
				r.ensure(uint64(batch))
				for range batch {
					if _, err := r.f.Add(counterTag(next)); err != nil {
						b.Fatal(err)
					}
					next++
				}
				if err := r.f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "tags/s")
		})
	}
}

// BenchmarkAddAndWaitParallel is a mix's use: many packets at once, each forwarded only once
// its tag is durable, with Run grouping the fsyncs. tags/fsync shows the grouping.
func BenchmarkAddAndWaitParallel(b *testing.B) {
	f, err := Open(filepath.Join(b.TempDir(), "replay"), Config{Capacity: MaxCapacity / 8, FalsePositiveRate: 1e-6})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Remove()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, 100*time.Millisecond) }()
	var next atomic.Uint64
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			fresh, err := f.AddAndWait(context.Background(), counterTag(next.Add(1)))
			if err != nil || !fresh {
				b.Error(fresh, err)
				return
			}
		}
	})
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	st := f.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tags/s")
	b.ReportMetric(float64(st.Count)/float64(max(st.Fsyncs, 1)), "tags/fsync")
}

// BenchmarkOpen reloads a file of a million records: one op is one Open.
func BenchmarkOpen(b *testing.B) {
	const records = 1 << 20
	path := filepath.Join(b.TempDir(), "replay")
	f, err := Open(path, benchConfig)
	if err != nil {
		b.Fatal(err)
	}
	for i := range uint64(records) {
		if _, err := f.Add(counterTag(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		g, err := Open(path, benchConfig)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if c := g.Stats().Count; c < records*999/1000 {
			b.Fatalf("reloaded %d tags", c)
		}
		g.Close()
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/records*1e9, "ns/record")
}
