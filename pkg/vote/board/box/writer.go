package box

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
)

// Board is the writer of one election's board file. It is not safe for concurrent use: the
// vote service calls it from its single writer goroutine.
//
// Entries are staged (signed, checked against the board rules, buffered) and then committed
// together with one write and one fsync (group commit); a receipt may be sent only after
// Commit returns. After a failed write the Board refuses everything: the file is repaired by
// reopening it.
type Board struct {
	p       *board.Params
	key     *keys.IdentityPrivateKey
	f       *os.File
	chk     *board.Checker
	offsets []int64 // file offset of each entry's frame, by sequence number
	size    int64   // end of the committed entries
	buf     []byte  // staged frames
	staged  []*board.Entry
	broken  error
}

// OpenBoard opens (creating it when missing) the board of election p in dir for appending,
// with the box's key. It recovers from a crash: an incomplete frame at the end (an append cut
// short) is truncated away and the truncation fsync'd; the remaining board is checked with the
// rules of §11.6 (hash chain, box signatures, order, times; the casts were checked before they
// were appended, so their proofs are not checked again). A board that breaks a rule is an
// error: the operator must look at it.
func OpenBoard(dir string, p *board.Params, key *keys.IdentityPrivateKey) (*Board, error) {
	if !key.Public().Equal(p.BoxKey) {
		return nil, fmt.Errorf("box: election %q names box key %s, not this box's", p.ElectionID, p.BoxKey)
	}
	ed, err := electionDir(dir, p.ElectionID)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(ed, BoardFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("box: %w", err)
	}
	b := &Board{p: p, key: key, f: f}
	if err := b.recover(); err != nil {
		f.Close()
		return nil, fmt.Errorf("box: %s: %w", path, err)
	}
	return b, nil
}

func (b *Board) recover() error {
	chk, err := board.NewChecker(b.p)
	if err != nil {
		return err
	}
	chk.TrustCasts()
	if _, err := b.f.Seek(0, 0); err != nil {
		return err
	}
	es, end, err := readEntries(b.f)
	if err != nil && !errors.Is(err, board.ErrTornFrame) {
		return err
	}
	for _, e := range es {
		if err := chk.Add(e); err != nil {
			return err
		}
	}
	var off int64
	for _, e := range es {
		b.offsets = append(b.offsets, off)
		off += int64(board.FramePrefix + len(e.Marshal()))
	}
	st, err := b.f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != end {
		// The last append was cut short before its fsync returned: nobody got a receipt for it.
		if err := b.f.Truncate(end); err != nil {
			return err
		}
		if err := b.f.Sync(); err != nil {
			return err
		}
	}
	if _, err := b.f.Seek(end, 0); err != nil {
		return err
	}
	b.chk, b.size = chk, end
	return nil
}

// Close closes the file. Staged entries that were not committed are lost (nobody got a receipt
// for them).
func (b *Board) Close() error { return b.f.Close() }

// Params returns the election's parameters.
func (b *Board) Params() *board.Params { return b.p }

// Len returns the number of entries, staged ones included.
func (b *Board) Len() uint64 { return b.chk.Len() }

// Closed reports whether the close entry is on the board (or staged).
func (b *Board) Closed() bool { return b.chk.Closed() }

// Stage signs the next entry and checks it against the board rules (§11.6: time in the voting
// period for a cast, not after the close, not a replayed cast; close at or after the end). Its
// time is now, or the previous entry's when the clock went back. The cast or close in payload
// must have been checked by the caller (Cast.Check, Close.Verify). The entry is durable only
// after Commit.
func (b *Board) Stage(kind board.Kind, now time.Time, payload []byte) (*board.Entry, error) {
	if b.broken != nil {
		return nil, b.broken
	}
	t := time.UnixMilli(now.UnixMilli())
	if last := b.chk.LastTime(); t.Before(last) {
		t = last
	}
	e, err := board.NewEntry(b.p, b.key, b.chk.Len(), b.chk.Head(), kind, t, payload)
	if err != nil {
		return nil, err
	}
	if err := b.chk.Add(e); err != nil {
		return nil, err
	}
	b.offsets = append(b.offsets, b.size+int64(len(b.buf)))
	b.buf = e.AppendFrame(b.buf)
	b.staged = append(b.staged, e)
	return e, nil
}

// Commit writes the staged entries and fsyncs the file. On error the Board is broken: every
// later call fails, and the service must stop; reopening repairs the file.
func (b *Board) Commit() error {
	if b.broken != nil {
		return b.broken
	}
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.f.Write(b.buf)
	if err == nil {
		err = b.f.Sync()
	}
	if err != nil {
		b.broken = fmt.Errorf("box: board of %q: append failed, reopen to repair: %w", b.p.ElectionID, err)
		return b.broken
	}
	b.size += int64(len(b.buf))
	b.buf, b.staged = b.buf[:0], b.staged[:0]
	return nil
}

// Receipt returns the receipt of the entry holding a cast with hash castHash (a
// retransmission), or nil. For a staged entry, the receipt may be sent only after Commit.
func (b *Board) Receipt(castHash [board.HashSize]byte) (*board.Receipt, error) {
	seq, ok := b.chk.CastSeq(castHash)
	if !ok {
		return nil, nil
	}
	if b.offsets[seq] >= b.size {
		return b.staged[int(seq)-(len(b.offsets)-len(b.staged))].Receipt(), nil
	}
	end := b.size
	if int(seq)+1 < len(b.offsets) && b.offsets[seq+1] < end {
		end = b.offsets[seq+1]
	}
	buf := make([]byte, end-b.offsets[seq])
	if _, err := b.f.ReadAt(buf, b.offsets[seq]); err != nil {
		return nil, fmt.Errorf("box: read entry %d: %w", seq, err)
	}
	e, err := board.ParseEntry(buf[board.FramePrefix:])
	if err != nil {
		return nil, fmt.Errorf("box: read entry %d: %w", seq, err)
	}
	return e.Receipt(), nil
}
