package board

import (
	"fmt"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// Checker applies the rules of a valid board (§11.6) entry by entry, so that a box can check
// its board as it reads it back and a verifier can stream a large board.
type Checker struct {
	p        *Params
	n        uint64
	prev     [HashSize]byte
	last     time.Time
	closed   bool
	casts    map[[HashSize]byte]uint64 // cast hash -> seq, to refuse replays
	verified bool                      // check ballot proofs and signatures (not for a box's own re-read)
}

// NewChecker starts checking a board of election p. It validates p.
func NewChecker(p *Params) (*Checker, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Checker{p: p, prev: Genesis(p), casts: map[[HashSize]byte]uint64{}, verified: true}, nil
}

// TrustCasts makes c skip Cast.Check (voter signatures and ballot proofs) on the entries it
// adds: for a box reading back its own board, whose casts it checked before appending them.
// Every other rule, the hash chain and the box signatures included, is still checked.
func (c *Checker) TrustCasts() { c.verified = false }

// Len returns the number of entries accepted so far.
func (c *Checker) Len() uint64 { return c.n }

// Head returns the hash of the last accepted entry (Genesis before the first): the Prev of the
// next entry.
func (c *Checker) Head() [HashSize]byte { return c.prev }

// Closed reports whether the close entry was accepted.
func (c *Checker) Closed() bool { return c.closed }

// LastTime returns the time of the last accepted entry (zero before the first).
func (c *Checker) LastTime() time.Time { return c.last }

// CastSeq returns the entry that holds a cast with this hash (Cast.Hash), if any.
func (c *Checker) CastSeq(h [HashSize]byte) (uint64, bool) {
	s, ok := c.casts[h]
	return s, ok
}

// Add checks e as the next entry. The error names the entry and the rule it breaks; the
// checker is unchanged by a refused entry.
func (c *Checker) Add(e *Entry) error {
	if err := c.check(e); err != nil {
		return fmt.Errorf("board entry %d: %w", c.n, err)
	}
	if e.Cast != nil {
		c.casts[e.Cast.Hash()] = e.Seq
	}
	c.prev = e.Hash()
	c.last = e.Time
	c.closed = e.Kind == KindClose
	c.n++
	return nil
}

func (c *Checker) check(e *Entry) error {
	p := c.p
	switch {
	case c.closed:
		return fail(ErrInvalid, "entry after the close entry")
	case c.n >= MaxEntries:
		return fmt.Errorf("%w: more than %d entries", ErrTooLarge, MaxEntries)
	case e.Seq != c.n:
		return fail(ErrInvalid, "sequence number %d, want %d", e.Seq, c.n)
	case e.ElectionID != p.ElectionID:
		return fail(ErrWrongElection, "entry of election %q, not %q", e.ElectionID, p.ElectionID)
	case e.Prev != c.prev && c.n == 0:
		return fail(ErrInvalid, "hash chain broken (prev is not the genesis value of this election and box)")
	case e.Prev != c.prev:
		return fail(ErrInvalid, "hash chain broken (prev does not match entry %d)", c.n-1)
	case !e.VerifySignature(p):
		return fail(ErrBadSignature, "box signature invalid")
	case e.Time.Before(c.last):
		return fail(ErrInvalid, "time %s is before the previous entry's %s", e.Time.Format(time.RFC3339Nano), c.last.Format(time.RFC3339Nano))
	}
	switch e.Kind {
	case KindBallot:
		if e.Cast == nil {
			return fmt.Errorf("%w: ballot entry without a parsed cast", ErrMalformed)
		}
		if e.Time.Before(p.Opens) || !e.Time.Before(p.Closes) {
			return fail(ErrInvalid, "cast at %s, outside the voting period [%s, %s)",
				e.Time.Format(time.RFC3339Nano), p.Opens.UTC().Format(time.RFC3339), p.Closes.UTC().Format(time.RFC3339))
		}
		if s, dup := c.casts[e.Cast.Hash()]; dup {
			return fail(ErrInvalid, "cast repeats entry %d (replayed cast of credential %s)", s, short(e.Cast.Credential))
		}
		if c.verified {
			if err := e.Cast.Check(p); err != nil {
				return err
			}
		}
	case KindClose:
		if e.Close == nil {
			return fmt.Errorf("%w: close entry without a parsed close", ErrMalformed)
		}
		if e.Time.Before(p.Closes) {
			return fail(ErrInvalid, "closed at %s, before the end of the voting period %s",
				e.Time.Format(time.RFC3339Nano), p.Closes.UTC().Format(time.RFC3339))
		}
		if err := e.Close.Verify(p); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: unknown entry kind %d", ErrMalformed, e.Kind)
	}
	return nil
}

// Finish checks that the board ended with its close entry.
func (c *Checker) Finish() error {
	if !c.closed {
		return fail(ErrInvalid, "the board has %d entries and no close entry", c.n)
	}
	return nil
}

// VerifyBoard checks a complete board of election p (§11.6): sequence numbers, the hash chain
// from Genesis(p), the box's signature on every entry, non-decreasing times, every cast inside
// the voting period, not repeated and accepted by Cast.Check, and exactly one close entry,
// last, at or after p.Closes, with at least p.Threshold valid trustee signatures. The error
// names the first entry that breaks a rule and the rule.
//
// The casts' checks (signatures and proofs, nearly all of the work) run on all cores; the
// error reported is the same as that of checking entry by entry in order.
func VerifyBoard(p *Params, entries []*Entry) error {
	c, err := NewChecker(p)
	if err != nil {
		return err
	}
	castErrs := make([]error, len(entries))
	group.Parallel(len(entries), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if e := entries[i]; e.Kind == KindBallot && e.Cast != nil {
				castErrs[i] = e.Cast.Check(p)
			}
		}
	})
	c.TrustCasts()
	for i, e := range entries {
		if err := c.Add(e); err != nil {
			return err
		}
		if castErrs[i] != nil {
			return fmt.Errorf("board entry %d: %w", i, castErrs[i])
		}
	}
	return c.Finish()
}

// InputLists returns, per question, the ciphertexts of the last cast of each credential,
// ordered by the position of that last cast on the board (§11.6: re-voting replaces the
// earlier ballot). This is the input of the first mixer. It checks the board's structure (kinds,
// order), not its signatures and proofs: call VerifyBoard first.
func InputLists(p *Params, entries []*Entry) ([][]verificatum.Ciphertext, error) {
	last := map[keys.IdentityPublicKey]int{}
	for i, e := range entries {
		if e.Seq != uint64(i) {
			return nil, fmt.Errorf("board entry %d: %w: sequence number %d", i, ErrInvalid, e.Seq)
		}
		switch e.Kind {
		case KindBallot:
			if e.Cast == nil || len(e.Cast.Ballots) != len(p.Questions) {
				return nil, fmt.Errorf("board entry %d: %w: want a cast with %d ballots", i, ErrMalformed, len(p.Questions))
			}
			last[e.Cast.Credential] = i
		case KindClose:
			if i != len(entries)-1 {
				return nil, fmt.Errorf("board entry %d: %w: close entry before the end", i, ErrInvalid)
			}
		default:
			return nil, fmt.Errorf("board entry %d: %w: unknown entry kind %d", i, ErrMalformed, e.Kind)
		}
	}
	lists := make([][]verificatum.Ciphertext, len(p.Questions))
	for q := range lists {
		lists[q] = make([]verificatum.Ciphertext, 0, len(last))
	}
	for i, e := range entries {
		if e.Kind != KindBallot || last[e.Cast.Credential] != i {
			continue
		}
		for q, b := range e.Cast.Ballots {
			lists[q] = append(lists[q], b.Ciphertext)
		}
	}
	return lists, nil
}
