package replay

import (
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tagSource returns a deterministic stream of random-looking tags.
func tagSource(seed uint64) func() Tag {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	r := rand.NewChaCha8(s)
	return func() Tag {
		var t Tag
		r.Read(t[:])
		return t
	}
}

// keySource is a deterministic Config.Rand.
func keySource(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	s[31] = 'k'
	return rand.NewChaCha8(s)
}

// openTest opens a filter in a fresh directory and removes it at the end of the test.
func openTest(t testing.TB, cfg Config) *Filter {
	t.Helper()
	if cfg.Rand == nil {
		cfg.Rand = keySource(cfg.Epoch)
	}
	f, err := Open(filepath.Join(t.TempDir(), "replay"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Remove() })
	return f
}

// contains reports whether tag is in the filter without inserting it.
func (f *Filter) contains(tag Tag) bool {
	var idx [MaxHashes]uint64
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bloom.has(f.bloom.indexes(f.hm.digest(&tag), &idx))
}

func mustAdd(t testing.TB, f *Filter, tag Tag, wantFresh bool) {
	t.Helper()
	fresh, err := f.Add(tag)
	if err != nil {
		t.Fatalf("Add(%x): %v", tag[:4], err)
	}
	if fresh != wantFresh {
		t.Fatalf("Add(%x) fresh = %v, want %v", tag[:4], fresh, wantFresh)
	}
}

var smallConfig = Config{Epoch: 42, Capacity: 10_000, FalsePositiveRate: 1e-9}

func TestFreshThenDuplicate(t *testing.T) {
	f := openTest(t, smallConfig)
	next := tagSource(3)
	a, b := next(), next()
	mustAdd(t, f, a, true)
	mustAdd(t, f, a, false)
	mustAdd(t, f, b, true)
	mustAdd(t, f, a, false)
	mustAdd(t, f, b, false)
	if st := f.Stats(); st.Count != 2 || st.Pending != 2 || st.Epoch != 42 {
		t.Fatalf("stats %+v, want 2 tags, 2 pending, epoch 42", st)
	}
	// A duplicate needs no durability.
	_, seq, err := f.AddSeq(a)
	if err != nil || seq != 0 {
		t.Fatalf("AddSeq(duplicate) = seq %d, %v; want 0, nil", seq, err)
	}
	if err := f.WaitDurable(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if st := f.Stats(); st.Pending != 0 {
		t.Fatalf("%d pending after Sync", st.Pending)
	}
}

func TestPersistAcrossCloseAndOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	cfg := smallConfig
	cfg.Rand = keySource(1)
	f, err := Open(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	next := tagSource(4)
	var tags []Tag
	for range 3000 {
		tag := next()
		tags = append(tags, tag)
		mustAdd(t, f, tag, true)
		if len(tags)%700 == 0 {
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := f.Stats()
	if err := f.Close(); err != nil { // Close syncs the rest
		t.Fatal(err)
	}
	if _, err := f.Add(next()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close: %v, want ErrClosed", err)
	}
	if err := f.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(headerSize + len(tags)*recordSize); fi.Size() != want {
		t.Fatalf("file is %d bytes, want %d", fi.Size(), want)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}

	// The reopened filter has the same shape and bits, and every tag is a duplicate. The
	// Config's other parameters are ignored for an existing file.
	cfg.Capacity, cfg.FalsePositiveRate = 50, 0.5
	g, err := Open(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	after := g.Stats()
	before.Pending, after.Pending, before.Fsyncs, after.Fsyncs = 0, 0, 0, 0
	if before != after {
		t.Fatalf("stats after reopen %+v, before %+v", after, before)
	}
	for _, tag := range tags {
		mustAdd(t, g, tag, false)
	}
	mustAdd(t, g, next(), true)
}

// A crash loses what was buffered and keeps what was synced. The crash is simulated by
// copying the file while the filter is still open: that is what the disk holds.
func TestCrashKeepsOnlyDurableRecords(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "replay")
	f, err := Open(path, smallConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Remove()
	next := tagSource(5)
	durable := []Tag{next(), next(), next()}
	for _, tag := range durable[:2] {
		mustAdd(t, f, tag, true)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	fresh, err := f.AddAndWait(context.Background(), durable[2])
	if err != nil || !fresh {
		t.Fatalf("AddAndWait = %v, %v", fresh, err)
	}
	buffered := []Tag{next(), next()}
	for _, tag := range buffered {
		mustAdd(t, f, tag, true)
	}

	crashed := filepath.Join(dir, "crashed")
	copyFile(t, path, crashed)
	g, err := Open(crashed, smallConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	for _, tag := range durable {
		mustAdd(t, g, tag, false)
	}
	for _, tag := range buffered {
		mustAdd(t, g, tag, true)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeFilterFile makes a filter file with the given tags, all synced, and returns its bytes.
func writeFilterFile(t *testing.T, path string, cfg Config, tags []Tag) []byte {
	t.Helper()
	f, err := Open(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		mustAdd(t, f, tag, true)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTornTailTruncated(t *testing.T) {
	next := tagSource(6)
	var tags []Tag
	for range 10 {
		tags = append(tags, next())
	}
	zero := make([]byte, recordSize)
	badCRC := appendRecord(nil, &tags[9])
	badCRC[TagSize] ^= 1
	for _, c := range []struct {
		name string
		tail func(good []byte) []byte // the bytes after the 8 good records
	}{
		{"partial record", func(g []byte) []byte { return g[:17] }},
		{"one byte", func(g []byte) []byte { return g[:1] }},
		{"record of zeros", func([]byte) []byte { return zero }},
		{"bad checksum", func([]byte) []byte { return badCRC }},
		// Pages of the last write may reach the disk out of order: a valid record after an
		// invalid one, inside the window, was not durable either.
		{"valid after invalid", func(g []byte) []byte { return append(append([]byte{}, zero...), g[recordSize:]...) }},
		{"zeros then partial", func(g []byte) []byte { return append(append([]byte{}, zero...), g[:20]...) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "replay")
			full := writeFilterFile(t, path, smallConfig, tags)
			good := full[:headerSize+8*recordSize]
			tail := c.tail(full[headerSize+8*recordSize:])
			if err := os.WriteFile(path, append(append([]byte{}, good...), tail...), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path, smallConfig)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Remove()
			if st := f.Stats(); st.Count != 8 || st.TruncatedBytes != int64(len(tail)) {
				t.Fatalf("stats %+v, want 8 tags and %d bytes truncated", st, len(tail))
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() != int64(len(good)) {
				t.Fatalf("file not truncated to %d bytes: %v %v", len(good), fi.Size(), err)
			}
			for _, tag := range tags[:8] {
				mustAdd(t, f, tag, false)
			}
			// The dropped records were never durable; their tags are fresh again, and the
			// file keeps working after the truncation.
			for _, tag := range tags[8:] {
				mustAdd(t, f, tag, true)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			g, err := Open(path, smallConfig)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Remove()
			if st := g.Stats(); st.Count != 10 || st.TruncatedBytes != 0 {
				t.Fatalf("stats after second reopen %+v", st)
			}
		})
	}
}

// An invalid record followed by more than the last write's worth of data is corruption of
// durable records: refused, and the file left untouched.
func TestCorruptRecordBeforeTornWindow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	next := tagSource(7)
	var tags []Tag
	for range maxTornRecords + 10 {
		tags = append(tags, next())
	}
	cfg := smallConfig
	b := writeFilterFile(t, path, cfg, tags)
	b[headerSize+5*recordSize+3] ^= 0x80
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err := Open(path, cfg); !errors.Is(err, ErrCorrupt) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
	after, err := os.ReadFile(path)
	if err != nil || string(after) != string(b) {
		t.Fatalf("refused file was modified (%v)", err)
	}
	// The same damage inside the last maxTornBytes is a torn tail.
	b[headerSize+5*recordSize+3] ^= 0x80
	b[len(b)-maxTornBytes+3] ^= 0x80
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Remove()
	if st := f.Stats(); st.TruncatedBytes != maxTornBytes || st.Count != uint64(len(tags)-maxTornRecords) {
		t.Fatalf("stats %+v", st)
	}
}

func TestWrongEpochRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	writeFilterFile(t, path, smallConfig, nil)
	cfg := smallConfig
	cfg.Epoch++
	if _, err := Open(path, cfg); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("Open: %v, want ErrWrongEpoch", err)
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Capacity: 0, FalsePositiveRate: 1e-6},
		{Capacity: MaxCapacity + 1, FalsePositiveRate: 1e-6},
		{Capacity: 100, FalsePositiveRate: 0},
	} {
		path := filepath.Join(t.TempDir(), "replay")
		if _, err := Open(path, cfg); err == nil {
			t.Errorf("Open(%+v) succeeded", cfg)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%+v) left a file: %v", cfg, err)
		}
	}
}

func TestFullRefusesFreshTags(t *testing.T) {
	const n = 50
	f := openTest(t, Config{Capacity: n, FalsePositiveRate: 1e-3})
	next := tagSource(8)
	var first Tag
	for f.Stats().Count < OverfillFactor*n {
		tag := next()
		if f.Stats().Count == 0 {
			first = tag
		}
		if _, err := f.Add(tag); err != nil {
			t.Fatal(err)
		}
	}
	var full Tag
	for {
		full = next()
		if !f.contains(full) {
			break
		}
	}
	if fresh, err := f.Add(full); fresh || !errors.Is(err, ErrFull) {
		t.Fatalf("Add to a full filter = %v, %v; want ErrFull", fresh, err)
	}
	// Replays are still recognised.
	mustAdd(t, f, first, false)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// A full file is within the limits and reopens.
	g, err := Open(f.Path(), Config{Capacity: n, FalsePositiveRate: 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	if c := g.Stats().Count; c != OverfillFactor*n {
		t.Fatalf("reopened with %d tags", c)
	}
}

func TestRemove(t *testing.T) {
	f := openTest(t, smallConfig)
	mustAdd(t, f, tagSource(9)(), true)
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file still there: %v", err)
	}
	if _, err := f.Add(tagSource(10)()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Remove: %v", err)
	}
	if err := f.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Remove with a record buffered: %v, want ErrClosed", err)
	}
	if err := f.Remove(); err != nil {
		t.Fatalf("second Remove: %v", err)
	}

	// Remove after Close deletes the file too.
	g := openTest(t, smallConfig)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file still there: %v", err)
	}
}

// Waiters for records already buffered share one write and one fsync.
func TestGroupCommit(t *testing.T) {
	f := openTest(t, smallConfig)
	next := tagSource(11)
	const n = 100
	seqs := make([]Seq, n)
	for i := range seqs {
		fresh, seq, err := f.AddSeq(next())
		if err != nil || !fresh {
			t.Fatal(fresh, err)
		}
		seqs[i] = seq
	}
	var wg sync.WaitGroup
	for _, seq := range seqs {
		wg.Go(func() {
			if err := f.WaitDurable(context.Background(), seq); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := f.Stats(); st.Fsyncs != 1 || st.Pending != 0 {
		t.Fatalf("%d fsyncs, %d pending; want 1 fsync, nothing pending", st.Fsyncs, st.Pending)
	}
	// Nothing to write: no fsync.
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if st := f.Stats(); st.Fsyncs != 1 {
		t.Fatalf("%d fsyncs after an empty Sync", st.Fsyncs)
	}
}

// A large backlog is written in chunks of at most maxTornBytes, each fsynced, which is what
// bounds the torn tail.
func TestWriteChunks(t *testing.T) {
	f := openTest(t, smallConfig)
	next := tagSource(12)
	for range 2*maxTornRecords + 1 {
		mustAdd(t, f, next(), true)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if st := f.Stats(); st.Fsyncs != 3 {
		t.Fatalf("%d fsyncs for %d records, want 3", st.Fsyncs, 2*maxTornRecords+1)
	}
}

func TestRunSyncsWaiters(t *testing.T) {
	f := openTest(t, smallConfig)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// An interval far longer than the test: only the waiters' wake-ups make Run sync.
	go func() { done <- f.Run(ctx, time.Hour) }()
	for !f.isRunning() {
		time.Sleep(time.Millisecond)
	}
	if err := f.Run(ctx, time.Second); err == nil {
		t.Fatal("second Run accepted")
	}

	next := tagSource(13)
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	for range 5 {
		fresh, err := f.AddAndWait(wctx, next())
		if err != nil || !fresh {
			t.Fatalf("AddAndWait = %v, %v", fresh, err)
		}
	}
	if st := f.Stats(); st.Pending != 0 {
		t.Fatalf("%d pending after AddAndWait", st.Pending)
	}

	// Cancelling Run syncs what nobody waited for.
	mustAdd(t, f, next(), true)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := f.Stats(); st.Pending != 0 {
		t.Fatalf("%d pending after Run stopped", st.Pending)
	}
	// Without Run, WaitDurable syncs by itself.
	_, seq, err := f.AddSeq(next())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.WaitDurable(wctx, seq); err != nil {
		t.Fatal(err)
	}
}

func (f *Filter) isRunning() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running
}

func TestRunIntervalSyncs(t *testing.T) {
	f := openTest(t, smallConfig)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, time.Millisecond) }()
	mustAdd(t, f, tagSource(14)(), true)
	for f.Stats().Pending != 0 { // no waiter: only the ticker can sync
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := f.Run(context.Background(), 0); err == nil {
		t.Fatal("Run with a zero interval accepted")
	}
	f.Close()
	if err := f.Run(context.Background(), time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
}

func TestRunStopsOnClose(t *testing.T) {
	for _, remove := range []bool{false, true} {
		f := openTest(t, smallConfig)
		done := make(chan error, 1)
		go func() { done <- f.Run(context.Background(), time.Hour) }()
		for !f.isRunning() {
			time.Sleep(time.Millisecond)
		}
		mustAdd(t, f, tagSource(18)(), true)
		var err error
		if remove {
			err = f.Remove()
		} else {
			err = f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Run after Close/Remove: %v", err)
		}
	}
}

func TestWaitDurableCancelled(t *testing.T) {
	f := openTest(t, smallConfig)
	_, seq, err := f.AddSeq(tagSource(15)())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.WaitDurable(ctx, seq); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitDurable: %v, want context.Canceled", err)
	}
}

// After a failed write the filter fails closed, and reopening recovers.
func TestFailsClosedAfterWriteError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	f, err := Open(path, smallConfig)
	if err != nil {
		t.Fatal(err)
	}
	next := tagSource(16)
	kept := next()
	mustAdd(t, f, kept, true)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	lost := next()
	_, seq, err := f.AddSeq(lost)
	if err != nil {
		t.Fatal(err)
	}
	f.file.Close() // the disk goes away
	if err := f.Sync(); err == nil {
		t.Fatal("Sync succeeded on a closed file")
	}
	if err := f.WaitDurable(context.Background(), seq); err == nil {
		t.Fatal("WaitDurable succeeded after a write error")
	}
	if err := f.WaitDurable(context.Background(), seq-1); err != nil {
		t.Fatalf("WaitDurable for a record synced before the error: %v", err)
	}
	if _, err := f.Add(next()); err == nil {
		t.Fatal("Add succeeded after a write error")
	}
	if err := f.Run(context.Background(), time.Second); err == nil {
		t.Fatal("Run succeeded after a write error")
	}
	if err := f.Close(); err == nil {
		t.Fatal("Close reported success after a write error")
	}
	g, err := Open(path, smallConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	mustAdd(t, g, kept, false)
	mustAdd(t, g, lost, true)
}

// Concurrent Adds of the same tags: each tag is fresh exactly once. Run under -race.
func TestConcurrentAdd(t *testing.T) {
	f := openTest(t, Config{Capacity: 100_000, FalsePositiveRate: 1e-9})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- f.Run(ctx, time.Millisecond) }()

	const workers, perWorker = 8, 500
	next := tagSource(17)
	shared := make([]Tag, perWorker)
	for i := range shared {
		shared[i] = next()
	}
	freshCount := make([]atomic.Int32, perWorker)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			own := tagSource(1000 + uint64(w))
			for i := range perWorker {
				j := (i + w*perWorker/workers) % perWorker
				fresh, err := f.AddAndWait(context.Background(), shared[j])
				if err != nil {
					t.Error(err)
					return
				}
				if fresh {
					freshCount[j].Add(1)
				}
				if fresh, err := f.Add(own()); err != nil || !fresh {
					t.Errorf("own tag: %v, %v", fresh, err)
					return
				}
				if i%100 == 0 {
					if err := f.Sync(); err != nil {
						t.Error(err)
					}
					f.Stats()
				}
			}
		})
	}
	wg.Wait()
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	for j := range freshCount {
		if c := freshCount[j].Load(); c != 1 {
			t.Fatalf("shared tag %d fresh %d times", j, c)
		}
	}
	if st := f.Stats(); st.Count != perWorker*(workers+1) || st.Pending != 0 {
		t.Fatalf("stats %+v", st)
	}
}
