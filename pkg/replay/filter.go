package replay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// TagSize is the size of a Sphinx replay tag (docs/spec/sphinx.md §6).
	TagSize = 32
	// KeySize is the size of a filter's HMAC-SHA256 key.
	KeySize = 32
)

// Tag is a Sphinx replay tag.
type Tag [TagSize]byte

// Seq numbers the records of a filter: the n-th fresh tag added (counting those loaded from
// the file) has Seq n. WaitDurable(ctx, s) returns once records 1..s are on stable storage.
// Seq 0 is always durable.
type Seq uint64

var (
	// ErrCorrupt is wrapped by every error about a malformed filter file.
	ErrCorrupt = errors.New("replay: corrupt filter file")
	// ErrWrongEpoch is returned by Open for a file written for another epoch.
	ErrWrongEpoch = errors.New("replay: filter file belongs to another epoch")
	// ErrFull is returned by Add for a fresh tag once the filter holds OverfillFactor times
	// its capacity; the packet must be dropped.
	ErrFull = errors.New("replay: filter full")
	// ErrClosed is returned after Close or Remove.
	ErrClosed = errors.New("replay: filter closed")
)

// Config describes the filter of one epoch key.
type Config struct {
	// Epoch is the epoch of the key; it is stored in the file and checked by Open.
	Epoch uint64
	// Capacity is the number of distinct tags the filter is sized for: the most packets the
	// key can unwrap, that is peak rate times the key's lifetime (epoch plus grace period).
	Capacity uint64
	// FalsePositiveRate is the target probability that a fresh tag is reported as seen
	// (and its packet dropped) once Capacity tags are held.
	FalsePositiveRate float64
	// Rand is the source of the filter key; nil means crypto/rand. Tests only.
	Rand io.Reader
}

// Filter is the persistent replay filter of one epoch key. It is safe for concurrent use.
type Filter struct {
	path   string
	epoch  uint64
	header header
	torn   int64 // bytes of torn tail truncated by Open

	syncMu sync.Mutex // serialises writes to the file; taken before mu
	file   *os.File   // nil after Close or Remove; guarded by syncMu
	size   int64      // file size; guarded by syncMu
	fsyncs atomic.Uint64

	mu      sync.Mutex
	hm      *keyedHash // keyed with header.key; nil after Close or Remove
	bloom   *bloom
	count   uint64 // distinct tags held, loaded and added
	seq     Seq    // Seq of the last record added
	durable Seq    // last Seq known to be on stable storage
	pending []byte // encoded records seq durable+1..seq, not yet written
	spare   []byte // the other buffer of the pair, reused to avoid allocation
	err     error  // sticky write or fsync error: the filter fails closed
	closed  bool
	running bool          // a Run loop is active
	changed chan struct{} // closed and replaced when durable, err, closed or running changes

	kick chan struct{} // wakes Run for a waiter; capacity 1
	done chan struct{} // closed by Close and Remove, to stop Run
}

// Open opens the filter file at path, or creates it with a fresh random key if it does not
// exist. An existing file is loaded by re-inserting every record; its own parameters
// (capacity, bits, hashes) are used even if cfg asks for others, because the records can only
// be re-inserted into a filter of the shape that wrote them. A torn tail left by a crash is
// truncated (see Stats.TruncatedBytes); a file that is corrupt in any other way, or written
// for another epoch, is an error and is left untouched for the operator to inspect. cfg
// is checked in every case.
func Open(path string, cfg Config) (*Filter, error) {
	nbits, hashes, err := Size(cfg.Capacity, cfg.FalsePositiveRate)
	if err != nil {
		return nil, err
	}
	f := &Filter{
		path:    path,
		epoch:   cfg.Epoch,
		changed: make(chan struct{}),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		h := header{hashes: hashes, epoch: cfg.Epoch, capacity: cfg.Capacity, nbits: nbits}
		rnd := cfg.Rand
		if rnd == nil {
			rnd = rand.Reader
		}
		if _, err := io.ReadFull(rnd, h.key[:]); err != nil {
			return nil, fmt.Errorf("replay: generating filter key: %w", err)
		}
		if file, err = create(path, &h); err != nil {
			clear(h.key[:])
			return nil, err
		}
		f.init(h)
		clear(h.key[:])
		f.size = headerSize
	case err != nil:
		return nil, fmt.Errorf("replay: %w", err)
	default:
		if err := f.load(file); err != nil {
			file.Close()
			return nil, fmt.Errorf("%w (file %s)", err, path)
		}
	}
	f.file = file
	return f, nil
}

func (f *Filter) init(h header) {
	f.header = h
	f.bloom = newBloom(h.nbits, h.hashes)
	f.hm = newKeyedHash(&f.header.key)
}

// load reads an existing file into f and truncates its torn tail, if any.
func (f *Filter) load(file *os.File) error {
	fi, err := file.Stat()
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	size := fi.Size()
	var idx [MaxHashes]uint64
	_, valid, err := decodeFile(file, size, func(h header) (func(Tag) bool, error) {
		if h.epoch != f.epoch {
			return nil, fmt.Errorf("%w: file is for epoch %d, not %d", ErrWrongEpoch, h.epoch, f.epoch)
		}
		f.init(h)
		return func(t Tag) bool {
			ix := f.bloom.indexes(f.hm.digest(&t), &idx)
			if f.bloom.has(ix) {
				return false
			}
			f.bloom.set(ix)
			f.count++
			return true
		}, nil
	})
	if err != nil {
		return err
	}
	if valid < size {
		// Only records that were never fsynced can be here (see maxTornBytes); none was
		// acknowledged as durable, so dropping them reopens no replay.
		if err := file.Truncate(valid); err != nil {
			return fmt.Errorf("replay: truncating torn tail: %w", err)
		}
		if err := file.Sync(); err != nil {
			return fmt.Errorf("replay: truncating torn tail: %w", err)
		}
	}
	f.torn = size - valid
	f.size = valid
	f.seq = Seq(f.count)
	f.durable = f.seq
	return nil
}

// create writes a new file holding only the header, atomically: a crash leaves either no
// file or a complete header, never a half-written one that Open would refuse.
func create(path string, h *header) (*os.File, error) {
	tmp := path + ".tmp"
	file, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	fail := func(err error) (*os.File, error) {
		file.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("replay: creating %s: %w", path, err)
	}
	if _, err := file.Write(h.appendTo(nil)); err != nil {
		return fail(err)
	}
	if err := file.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := syncDir(path); err != nil {
		file.Close()
		return nil, fmt.Errorf("replay: creating %s: %w", path, err)
	}
	return file, nil
}

// syncDir makes a rename or removal of path durable.
func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Add tests whether tag has been seen by this filter and, if not, inserts it, atomically
// with respect to concurrent calls: of two concurrent Adds of one tag exactly one is fresh.
// A fresh tag's record is buffered, not yet durable: the packet may be forwarded only after
// Sync, WaitDurable or AddAndWait has made it durable. A tag that is not fresh (a replay,
// or a false positive) must be dropped. Add fails closed: after a write error, once the
// filter holds OverfillFactor*Capacity tags (ErrFull, for fresh tags only), or after Close,
// it returns an error and the packet must be dropped.
//
// Call Add only for packets that passed the header MAC check, so that garbage does not
// fill the filter.
func (f *Filter) Add(tag Tag) (fresh bool, err error) {
	fresh, _, err = f.AddSeq(tag)
	return fresh, err
}

// AddSeq is Add that also returns the Seq to pass to WaitDurable before forwarding the
// packet. For a tag that is not fresh it returns Seq 0.
func (f *Filter) AddSeq(tag Tag) (fresh bool, seq Seq, err error) {
	var idx [MaxHashes]uint64
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		return false, 0, ErrClosed
	case f.err != nil:
		return false, 0, f.err
	}
	// Hashing under the lock costs about a microsecond of serialisation per tag, far below
	// the rate a mix sees, and keeps one keyed hash per filter, dropped on Close.
	ix := f.bloom.indexes(f.hm.digest(&tag), &idx)
	if f.bloom.has(ix) {
		return false, 0, nil
	}
	if f.count >= f.header.maxRecords() {
		return false, 0, fmt.Errorf("%w: %d tags, %d times capacity %d", ErrFull, f.count, OverfillFactor, f.header.capacity)
	}
	f.bloom.set(ix)
	f.count++
	f.seq++
	f.pending = appendRecord(f.pending, &tag)
	return true, f.seq, nil
}

// AddAndWait is Add followed, for a fresh tag, by WaitDurable: when it returns true and no
// error, the packet may be forwarded.
func (f *Filter) AddAndWait(ctx context.Context, tag Tag) (fresh bool, err error) {
	fresh, seq, err := f.AddSeq(tag)
	if err != nil || !fresh {
		return false, err
	}
	if err := f.WaitDurable(ctx, seq); err != nil {
		return false, err
	}
	return true, nil
}

// Sync writes every record buffered before the call and fsyncs the file. Concurrent calls
// share the work: a call that finds a write in progress waits for it, and the next write
// takes every record buffered meanwhile, so n concurrent callers cost at most two fsyncs.
func (f *Filter) Sync() error {
	f.mu.Lock()
	target := f.seq
	f.mu.Unlock()
	return f.syncTo(target)
}

func (f *Filter) syncTo(target Seq) error {
	f.syncMu.Lock()
	defer f.syncMu.Unlock()

	f.mu.Lock()
	switch {
	case f.durable >= target:
		f.mu.Unlock()
		return nil
	case f.err != nil:
		f.mu.Unlock()
		return f.err
	case f.file == nil:
		f.mu.Unlock()
		return ErrClosed
	}
	buf, upto := f.pending, f.seq
	f.pending, f.spare = f.spare[:0], nil
	f.mu.Unlock()

	err := f.write(buf)

	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		// After a failed write or fsync the state of the file is unknown (the kernel may
		// have dropped the dirty pages and cleared the error), so there is no safe retry:
		// fail closed. Reopening the file truncates whatever tail the failure left.
		f.err = fmt.Errorf("replay: writing %s: %w", f.path, err)
		f.notify()
		return f.err
	}
	f.durable = upto
	f.spare = buf[:0]
	f.notify()
	return nil
}

// write appends buf, a whole number of records, to the file with an fsync after at most
// maxTornBytes, so that a crash can tear at most the last maxTornBytes of the file.
// Caller holds syncMu.
func (f *Filter) write(buf []byte) error {
	for len(buf) > 0 {
		n := min(len(buf), maxTornBytes)
		if _, err := f.file.WriteAt(buf[:n], f.size); err != nil {
			return err
		}
		f.size += int64(n)
		f.fsyncs.Add(1)
		if err := f.file.Sync(); err != nil {
			return err
		}
		buf = buf[n:]
	}
	return nil
}

// notify wakes every WaitDurable. Caller holds mu.
func (f *Filter) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// WaitDurable returns once the records up to seq are on stable storage. If a Run loop is
// active it asks Run to sync now and waits for it, up to the context's cancellation;
// otherwise it syncs itself (sharing the fsync with concurrent callers, as Sync does).
func (f *Filter) WaitDurable(ctx context.Context, seq Seq) error {
	for {
		f.mu.Lock()
		durable, err, closed, running, changed := f.durable, f.err, f.closed, f.running, f.changed
		f.mu.Unlock()
		switch {
		case durable >= seq:
			return nil
		case err != nil:
			return err
		case closed:
			return ErrClosed
		case ctx.Err() != nil:
			return ctx.Err()
		case !running:
			return f.syncTo(seq)
		}
		select {
		case f.kick <- struct{}{}:
		default: // Run already has a wake-up pending
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Run syncs the filter every interval, and at once whenever WaitDurable is waiting, until
// ctx is cancelled; then it syncs a last time. Writes that are waited for are therefore
// grouped by themselves: whatever arrives during one fsync goes in the next. The interval
// bounds how long a record nobody waits for stays buffered. Run returns nil after a clean
// shutdown or once the filter is closed or removed, and the error if a write fails (the filter is then
// unusable: Add fails, and the node should stop forwarding with this key).
func (f *Filter) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("replay: sync interval %v is not positive", interval)
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	if f.err != nil {
		f.mu.Unlock()
		return f.err
	}
	if f.running {
		f.mu.Unlock()
		return errors.New("replay: Run is already active for this filter")
	}
	f.running = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running = false
		f.notify()
		f.mu.Unlock()
	}()

	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		done := false
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
		case <-f.kick:
		case <-f.done:
			return nil
		}
		if err := f.Sync(); err != nil {
			if errors.Is(err, ErrClosed) {
				return nil
			}
			return err
		}
		if done {
			return nil
		}
	}
}

// Close syncs the buffered records, closes the file and frees the bit array. The file stays
// for a later Open in the same epoch.
func (f *Filter) Close() error {
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	f.mu.Lock()
	if f.file == nil {
		f.mu.Unlock()
		return ErrClosed
	}
	buf, upto, err := f.pending, f.seq, f.err
	f.closed = true
	f.mu.Unlock()

	if err == nil {
		if werr := f.write(buf); werr != nil {
			err = fmt.Errorf("replay: writing %s: %w", f.path, werr)
		}
	}
	if cerr := f.file.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("replay: closing %s: %w", f.path, cerr)
	}
	f.file = nil

	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.durable = upto
	} else if f.err == nil {
		f.err = err
	}
	f.release()
	return err
}

// Remove deletes the filter file and closes the filter without writing what is buffered:
// call it when the epoch key is erased, after which no packet for the key can be unwrapped
// and its replay tags are of no use. Remove after Close deletes the file too.
func (f *Filter) Remove() error {
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	f.mu.Lock()
	f.closed = true
	f.release()
	f.mu.Unlock()

	var err error
	if f.file != nil {
		err = f.file.Close()
		f.file = nil
	}
	if rerr := os.Remove(f.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return fmt.Errorf("replay: %w", rerr)
	}
	// Left over if a crash interrupted create; nothing else uses the name.
	if rerr := os.Remove(f.path + ".tmp"); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return fmt.Errorf("replay: %w", rerr)
	}
	if serr := syncDir(f.path); serr != nil {
		return fmt.Errorf("replay: removing %s: %w", f.path, serr)
	}
	if err != nil {
		return fmt.Errorf("replay: closing %s: %w", f.path, err)
	}
	return nil
}

// release drops the in-memory state after Close or Remove. Caller holds mu.
func (f *Filter) release() {
	f.closed = true
	f.bloom = nil
	f.pending, f.spare = nil, nil
	// The HMAC state derived from the key cannot be wiped (crypto/hmac offers no way); the
	// key is in the file anyway until Remove, and only protects the filter's layout.
	clear(f.header.key[:])
	f.hm = nil
	f.notify()
	select {
	case <-f.done:
	default:
		close(f.done)
	}
}

// Stats is a snapshot of a filter's state, for metrics and logs.
type Stats struct {
	Epoch    uint64
	Capacity uint64 // design capacity n
	Bits     uint64 // size of the bit array m; memory use is Bits/8 bytes
	Hashes   uint32 // k
	// Count is the number of tags held: fresh tags added plus those loaded. A tag refused
	// as a false positive is not counted, but it sets no bit either, so the filter's state
	// after N distinct tags offered is the one FalsePositiveRate(Bits, Hashes, N) describes.
	Count   uint64
	SetBits uint64 // bits set to 1
	Pending uint64 // records added but not yet durable
	Fsyncs  uint64 // fsyncs of record writes since Open
	// TruncatedBytes is the torn tail Open removed from the file (0 after a clean Close).
	TruncatedBytes int64
}

// Load is Count/Capacity: above 1 the filter holds more tags than it was sized for and its
// false-positive rate exceeds the target.
func (s Stats) Load() float64 { return float64(s.Count) / float64(s.Capacity) }

// Fill is the fraction of bits set.
func (s Stats) Fill() float64 { return float64(s.SetBits) / float64(s.Bits) }

// FalsePositiveRate is the current probability that a fresh random tag is reported as seen:
// Fill^k, exact for the filter's present state given ideal hashing.
func (s Stats) FalsePositiveRate() float64 {
	r := 1.0
	for range s.Hashes {
		r *= s.Fill()
	}
	return r
}

// Stats returns a snapshot of the filter's state.
func (f *Filter) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := Stats{
		Epoch:          f.header.epoch,
		Capacity:       f.header.capacity,
		Bits:           f.header.nbits,
		Hashes:         f.header.hashes,
		Count:          f.count,
		Pending:        uint64(f.seq - f.durable),
		Fsyncs:         f.fsyncs.Load(),
		TruncatedBytes: f.torn,
	}
	if f.bloom != nil {
		s.SetBits = f.bloom.setBits
	}
	return s
}

// Path returns the file name the filter was opened with.
func (f *Filter) Path() string { return f.path }
