package board

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/ballot"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
)

var decodeChoice = ballot.DecodeChoice

func TestParamsRoundTrip(t *testing.T) {
	f := newFixture(t, 5, 3, 2, 3, 2)
	b, err := f.p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseParams(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatal("params do not re-encode to the same bytes")
	}
	if !p.Opens.Equal(f.p.Opens) || !p.Closes.Equal(f.p.Closes) || p.Threshold != 2 || len(p.Voters) != 5 || !p.PublicKey.Y.Equal(f.p.PublicKey.Y) {
		t.Fatalf("params changed in a round trip: %+v", p)
	}
	for _, v := range f.p.Voters {
		if !p.Eligible(v) {
			t.Fatal("voter not eligible after a round trip")
		}
	}
	if p.Eligible(f.p.Trustees[0]) {
		t.Fatal("a trustee key is eligible")
	}
}

func TestParamsRefused(t *testing.T) {
	cases := []struct {
		name   string
		change func(p *Params)
		want   string
	}{
		{"bad id", func(p *Params) { p.ElectionID = "Council" }, "election id"},
		{"long id", func(p *Params) { p.ElectionID = "a234567890123456x" }, "election id"},
		{"no questions", func(p *Params) { p.Questions = nil }, "0 questions"},
		{"too many questions", func(p *Params) { p.Questions = make([]int, MaxQuestions+1) }, "17 questions"},
		{"zero choices", func(p *Params) { p.Questions = []int{0} }, "question 0 has 0 choices"},
		{"too many choices", func(p *Params) { p.Questions = []int{MaxChoicesPerQuestion + 1} }, "question 0 has 65537 choices"},
		{"no voters", func(p *Params) { p.Voters = nil }, "0 voters"},
		{"duplicate voter", func(p *Params) { p.Voters = append(p.Voters, p.Voters[0]) }, "appears twice"},
		{"duplicate trustee", func(p *Params) { p.Trustees[1] = p.Trustees[0] }, "trustee 2"},
		{"threshold 0", func(p *Params) { p.Threshold = 0 }, "threshold 0"},
		{"threshold over n", func(p *Params) { p.Threshold = 4 }, "threshold 4"},
		{"closes before opens", func(p *Params) { p.Closes = p.Opens }, "closes"},
		{"sub-second", func(p *Params) { p.Opens = p.Opens.Add(time.Millisecond) }, "whole seconds"},
		{"zero box key", func(p *Params) { p.BoxKey = [32]byte{} }, "box key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 3, 3, 2, 2)
			c.change(f.p)
			_, err := f.p.Marshal()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestParseParamsOverLimit(t *testing.T) {
	if _, err := ParseParams(make([]byte, MaxParamsSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	// A voter list node declaring more than MaxVoters children is refused before allocation.
	f := newFixture(t, 2, 1, 1, 2)
	tr := f.p.tree()
	c := tr.Children()
	voters := make([]*bytetree.Tree, MaxVoters+1)
	for i := range voters {
		voters[i] = c[5].Children()[0]
	}
	c[5] = bytetree.Node(voters...)
	b := bytetree.Node(c...).Encode()
	if _, err := ParseParams(b); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge for %d voters", err, MaxVoters+1)
	}
}

func TestCastRoundTripAndCheck(t *testing.T) {
	f := newFixture(t, 3, 1, 1, 3, 2)
	c := f.cast(1, 2, 1)
	b := c.Marshal()
	if len(b) != CastSize(2, len(f.p.ElectionID)) {
		t.Fatalf("cast of %d bytes, CastSize says %d", len(b), CastSize(2, len(f.p.ElectionID)))
	}
	c2, err := ParseCast(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c2.Marshal(), b) {
		t.Fatal("cast does not re-encode to the same bytes")
	}
	if err := c2.Check(f.p); err != nil {
		t.Fatal(err)
	}
	if got := f.decrypt(c2.Ballots[0].Ciphertext); got != 2 {
		t.Fatalf("question 0 decrypts to %d, want 2", got)
	}
	if _, err := NewCast(f.rng, f.p, f.voters[0], []int{3, 0}); err == nil {
		t.Fatal("a choice outside the question's range was encrypted")
	}
	if _, err := NewCast(f.rng, f.p, f.voters[0], []int{0}); err == nil {
		t.Fatal("a cast with too few choices was made")
	}
}

func TestCastRefused(t *testing.T) {
	f := newFixture(t, 3, 1, 1, 3, 2)
	resign := func(c *Cast, voter int) {
		copy(c.Signature[:], f.voters[voter].Sign(c.body().Encode()))
	}
	cases := []struct {
		name   string
		make   func() *Cast
		target error
		want   string
	}{
		{"wrong election", func() *Cast { c := f.cast(0, 0, 0); c.ElectionID = "other"; resign(c, 0); return c }, ErrWrongElection, `cast for election "other"`},
		{"wrong hash", func() *Cast { c := f.cast(0, 0, 0); c.ElectionHash[0] ^= 1; resign(c, 0); return c }, ErrWrongElection, "election hash differs"},
		{"not eligible", func() *Cast { c := f.cast(0, 0, 0); c.Credential = f.p.Trustees[0]; return c }, ErrNotEligible, "is not on the voter list"},
		{"bad signature", func() *Cast { c := f.cast(0, 0, 0); c.Signature[3] ^= 1; return c }, ErrBadSignature, "voter signature invalid"},
		{"signed by another voter", func() *Cast { c := f.cast(0, 0, 0); resign(c, 1); return c }, ErrBadSignature, "voter signature invalid"},
		{"ballots swapped between questions", func() *Cast {
			c := f.cast(0, 1, 1)
			c.Ballots[0], c.Ballots[1] = c.Ballots[1], c.Ballots[0]
			resign(c, 0)
			return c
		}, ErrBadProof, "ballot 0 proof invalid for credential"},
		{"ballot copied from another voter", func() *Cast {
			victim := f.cast(0, 2, 1)
			c := f.cast(1, 0, 0)
			c.Ballots[1] = victim.Ballots[1]
			resign(c, 1)
			return c
		}, ErrBadProof, "ballot 1 proof invalid for credential " + short(f.p.Voters[1]) + ": copied or altered ballot"},
		{"ballot altered", func() *Cast {
			c := f.cast(0, 0, 0)
			c.Ballots[0].Ciphertext.V.Mul(c.Ballots[0].Ciphertext.V, c.Ballots[0].Ciphertext.U)
			resign(c, 0)
			return c
		}, ErrBadProof, "ballot 0 proof invalid"},
		{"too few ballots", func() *Cast { c := f.cast(0, 0, 0); c.Ballots = c.Ballots[:1]; resign(c, 0); return c }, ErrMalformed, "1 ballots for 2 questions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.make()
			// Through the wire form, as the box sees it.
			c2, err := ParseCast(c.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			err = c2.Check(f.p)
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %v containing %q", err, tc.target, tc.want)
			}
		})
	}
}

func TestParseCastRefused(t *testing.T) {
	f := newFixture(t, 1, 1, 1, 2)
	gc := f.cast(0, 1)
	good := gc.Marshal()
	if _, err := ParseCast(make([]byte, MaxCastSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize cast: got %v", err)
	}
	// More ballots than MaxQuestions.
	c := f.cast(0, 1)
	for len(c.Ballots) <= MaxQuestions {
		c.Ballots = append(c.Ballots, c.Ballots[0])
	}
	if _, err := ParseCast(c.Marshal()); err == nil {
		t.Fatal("a cast with too many ballots parsed")
	}
	if _, err := ParseCast(good[:len(good)-1]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated cast: got %v", err)
	}
	if _, err := ParseCast(append(bytes.Clone(good), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: got %v", err)
	}
	// A point that is not on the curve (wrong group): flip a byte of u's x coordinate.
	bad := bytes.Clone(good)
	i := bytes.Index(bad, gc.Ballots[0].Ciphertext.U.Tree().Encode())
	if i < 0 {
		t.Fatal("ballot point not found in the cast")
	}
	bad[i+5+5+10] ^= 0x40
	if _, err := ParseCast(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("point off the curve: got %v", err)
	}
}

func TestBoardVerifies(t *testing.T) {
	f := newFixture(t, 4, 3, 2, 3, 2)
	b := f.builder()
	c0 := f.cast(0, 0, 1)
	b.addCast(c0)
	b.addCast(f.cast(1, 1, 0))
	b.addCast(f.cast(2, 2, 1))
	revote := f.cast(0, 2, 0) // voter 0 changes their mind
	b.addCast(revote)
	b.addClose()
	if err := VerifyBoard(f.p, b.entries); err != nil {
		t.Fatal(err)
	}
	file := MarshalBoard(b.entries)
	es, err := ParseBoard(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(MarshalBoard(es), file) {
		t.Fatal("board does not re-encode to the same bytes")
	}
	if err := VerifyBoard(f.p, es); err != nil {
		t.Fatal(err)
	}
	lists, err := InputLists(f.p, es)
	if err != nil {
		t.Fatal(err)
	}
	if len(lists) != 2 || len(lists[0]) != 3 {
		t.Fatalf("input lists of shape %d x %d, want 2 x 3", len(lists), len(lists[0]))
	}
	// Order of the last cast of each credential: voter 1, voter 2, voter 0 (re-vote).
	want := [][]int{{1, 2, 2}, {0, 1, 0}}
	for q := range want {
		for i, w := range want[q] {
			if got := f.decrypt(lists[q][i]); got != w {
				t.Fatalf("question %d, position %d: choice %d, want %d", q, i, got, w)
			}
		}
	}

	// Receipts.
	r0 := es[0].Receipt()
	r, err := ParseReceipt(r0.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Marshal(), r0.Marshal()) {
		t.Fatal("receipt does not re-encode to the same bytes")
	}
	if err := r.VerifyCast(f.p, c0.Marshal()); err != nil {
		t.Fatal(err)
	}
	if err := r.VerifyCast(f.p, revote.Marshal()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("receipt accepted another cast: %v", err)
	}
	later, err := r.OnBoard(es)
	if err != nil || later != 3 {
		t.Fatalf("OnBoard = %d, %v; want replaced by entry 3", later, err)
	}
	later, err = es[3].Receipt().OnBoard(es)
	if err != nil || later != -1 {
		t.Fatalf("OnBoard of the re-vote = %d, %v; want -1", later, err)
	}
	r.Signature[0] ^= 1
	if err := r.Verify(f.p); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("receipt with a bad signature: %v", err)
	}
	dropped := es[1].Receipt()
	if _, err := dropped.OnBoard(append(es[:1:1], es[2:]...)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("receipt of a dropped entry: %v", err)
	}
}

// TestBoardTampering changes a valid board in one way each and checks the exact error.
func TestBoardTampering(t *testing.T) {
	cases := []struct {
		name string
		// tamper changes the board; it may re-sign with the box key (a dishonest box).
		tamper func(f *fixture, b *boardBuilder)
		want   string
	}{
		{"hash chain broken", func(f *fixture, b *boardBuilder) {
			b.entries[2].Prev[0] ^= 1
			b.resign(2)
		}, "board entry 2: hash chain broken (prev does not match entry 1)"},
		{"genesis wrong", func(f *fixture, b *boardBuilder) {
			b.entries[0].Prev[0] ^= 1
			b.resign(0)
		}, "board entry 0: hash chain broken (prev is not the genesis value of this election and box)"},
		{"entry removed", func(f *fixture, b *boardBuilder) {
			b.entries = append(b.entries[:1], b.entries[2:]...)
		}, "board entry 1: sequence number 2, want 1"},
		{"entry removed and renumbered", func(f *fixture, b *boardBuilder) {
			b.entries = append(b.entries[:1], b.entries[2:]...)
			for i, e := range b.entries {
				e.Seq = uint64(i)
			}
			b.resign(1) // re-signed, but entry 1 still links to the removed entry
		}, "board entry 1: hash chain broken (prev does not match entry 0)"},
		{"box signature", func(f *fixture, b *boardBuilder) {
			b.entries[1].Signature[10] ^= 1
		}, "board entry 1: box signature invalid"},
		{"payload altered without re-signing", func(f *fixture, b *boardBuilder) {
			b.entries[1].Time = b.entries[1].Time.Add(time.Millisecond)
		}, "board entry 1: box signature invalid"},
		{"copied ballot", func(f *fixture, b *boardBuilder) {
			c := b.entries[1].Cast
			c.Ballots[0] = b.entries[0].Cast.Ballots[0]
			copy(c.Signature[:], f.voters[1].Sign(c.body().Encode()))
			b.entries[1].Payload = c.Marshal()
			b.resign(1)
		}, "board entry 1: ballot 0 proof invalid for credential " + "%v1" + ": copied or altered ballot"},
		{"not eligible", func(f *fixture, b *boardBuilder) {
			c := b.entries[1].Cast
			c.Credential = f.p.Trustees[0]
			b.entries[1].Payload = c.Marshal()
			b.resign(1)
		}, "board entry 1: credential " + "%t1" + " is not on the voter list"},
		{"forged voter signature", func(f *fixture, b *boardBuilder) {
			c := b.entries[2].Cast
			c.Signature[0] ^= 1
			b.entries[2].Payload = c.Marshal()
			b.resign(2)
		}, "board entry 2: voter signature invalid for credential " + "%v2"},
		{"replayed cast", func(f *fixture, b *boardBuilder) {
			cl := b.entries[len(b.entries)-1]
			b.entries = b.entries[:len(b.entries)-1]
			b.add(KindBallot, testOpens.Add(time.Hour), b.entries[0].Payload)
			b.entries = append(b.entries, cl)
			cl.Seq++
			b.resign(len(b.entries) - 1)
		}, "board entry 4: cast repeats entry 0 (replayed cast of credential " + "%v0" + ")"},
		{"cast after the voting period", func(f *fixture, b *boardBuilder) {
			b.entries[3].Time = testCloses
			b.resign(3)
		}, "board entry 3: cast at 2026-03-01T20:00:00Z, outside the voting period [2026-03-01T08:00:00Z, 2026-03-01T20:00:00Z)"},
		{"time goes back", func(f *fixture, b *boardBuilder) {
			b.entries[2].Time = testOpens.Add(time.Second)
			b.resign(2)
		}, "board entry 2: time 2026-03-01T08:00:01Z is before the previous entry's 2026-03-01T08:02:00Z"},
		{"no close", func(f *fixture, b *boardBuilder) {
			b.entries = b.entries[:len(b.entries)-1]
		}, "the board has 4 entries and no close entry"},
		{"entry after close", func(f *fixture, b *boardBuilder) {
			b.add(KindBallot, testCloses.Add(time.Minute), f.cast(3, 0, 0).Marshal())
		}, "board entry 5: entry after the close entry"},
		{"closed early", func(f *fixture, b *boardBuilder) {
			b.entries[4].Time = testCloses.Add(-time.Second)
			b.resign(4)
		}, "board entry 4: closed at 2026-03-01T19:59:59Z, before the end of the voting period 2026-03-01T20:00:00Z"},
		{"close under threshold", func(f *fixture, b *boardBuilder) {
			c := b.entries[4].Close
			c.Signatures = c.Signatures[:1]
			b.entries[4].Payload = c.Marshal()
			b.resign(4)
		}, "board entry 4: close has 1 trustee signatures, the threshold is 2"},
		{"close with a forged trustee signature", func(f *fixture, b *boardBuilder) {
			c := b.entries[4].Close
			c.Signatures[1].Signature[0] ^= 1
			b.entries[4].Payload = c.Marshal()
			b.resign(4)
		}, "board entry 4: trustee 2's close signature is invalid"},
		{"wrong election", func(f *fixture, b *boardBuilder) {
			b.entries[0].ElectionID = "other"
			b.resign(0)
		}, `board entry 0: entry of election "other", not "council-2026"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 4, 3, 2, 3, 2)
			b := f.builder()
			b.addCast(f.cast(0, 0, 1))
			b.addCast(f.cast(1, 1, 0))
			b.addCast(f.cast(2, 2, 1))
			b.addCast(f.cast(0, 2, 0))
			b.addClose()
			if err := VerifyBoard(f.p, b.entries); err != nil {
				t.Fatalf("untampered board: %v", err)
			}
			tc.tamper(f, b)
			want := strings.NewReplacer("%v0", short(f.p.Voters[0]), "%v1", short(f.p.Voters[1]), "%v2", short(f.p.Voters[2]), "%t1", short(f.p.Trustees[0])).Replace(tc.want)
			// Through the file form, as a verifier sees it.
			es, err := ParseBoard(MarshalBoard(b.entries))
			if err != nil {
				t.Fatal(err)
			}
			err = VerifyBoard(f.p, es)
			if err == nil || err.Error() != want {
				t.Fatalf("got  %v\nwant %s", err, want)
			}
		})
	}
}

func TestReadEntryLimitsAndTornTail(t *testing.T) {
	f := newFixture(t, 2, 1, 1, 2)
	b := f.builder()
	b.addCast(f.cast(0, 1))
	b.addCast(f.cast(1, 0))
	file := MarshalBoard(b.entries)
	for _, cut := range []int{1, 3, FramePrefix, FramePrefix + 10, len(file) - len(MarshalBoard(b.entries[:1])) - 1} {
		_, err := ParseBoard(file[:len(file)-cut])
		if !errors.Is(err, ErrTornFrame) {
			t.Fatalf("board cut by %d bytes: got %v, want ErrTornFrame", cut, err)
		}
	}
	over := binary.BigEndian.AppendUint32(nil, uint32(MaxEntrySize+1))
	if _, _, err := ReadEntry(bytes.NewReader(over)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize frame: got %v", err)
	}
	if _, _, err := ReadEntry(bytes.NewReader(nil)); err != io.EOF {
		t.Fatalf("empty input: got %v, want io.EOF", err)
	}
	if _, err := ParseEntry(make([]byte, MaxEntrySize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize entry: got %v", err)
	}
	if _, err := ParseReceipt(make([]byte, MaxReceiptSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize receipt: got %v", err)
	}
	if _, err := ParseClose(make([]byte, MaxCloseSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize close: got %v", err)
	}
}

func TestCloseAssembly(t *testing.T) {
	f := newFixture(t, 1, 3, 2, 2)
	s1, err := SignClose(f.p, 1, f.trustees[0])
	if err != nil {
		t.Fatal(err)
	}
	s3, err := SignClose(f.p, 3, f.trustees[2])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SignClose(f.p, 2, f.trustees[0]); err == nil {
		t.Fatal("trustee 1's key signed as trustee 2")
	}
	s, err := ParseCloseSignature(s3.Marshal())
	if err != nil || !bytes.Equal(s.Marshal(), s3.Marshal()) {
		t.Fatalf("close signature round trip: %v", err)
	}
	if _, err := NewClose(f.p, []*CloseSignature{s1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("one signature under threshold 2: %v", err)
	}
	if _, err := NewClose(f.p, []*CloseSignature{s1, s1}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("the same trustee twice: %v", err)
	}
	c, err := NewClose(f.p, []*CloseSignature{s3, s1})
	if err != nil {
		t.Fatal(err)
	}
	if c.Signatures[0].Trustee != 1 || c.Signatures[1].Trustee != 3 {
		t.Fatalf("signatures not in trustee order: %+v", c.Signatures)
	}
	c2, err := ParseClose(c.Marshal())
	if err != nil || !bytes.Equal(c2.Marshal(), c.Marshal()) {
		t.Fatalf("close round trip: %v", err)
	}
	if err := c2.Verify(f.p); err != nil {
		t.Fatal(err)
	}
	bad := *s3
	bad.Signature[0] ^= 1
	if _, err := NewClose(f.p, []*CloseSignature{s1, &bad}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged signature: %v", err)
	}
	// Out-of-order indices in the encoding are refused.
	c.Signatures[0], c.Signatures[1] = c.Signatures[1], c.Signatures[0]
	if _, err := ParseClose(c.Marshal()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unordered close: %v", err)
	}
}

// The limits docs/spec/vote.md §11 states.
func TestSpecLimits(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"MaxCastSize", MaxCastSize, 4174},
		{"MaxEntrySize", MaxEntrySize, 4382},
		{"MaxParamsSize", MaxParamsSize, 1024 + (1<<20+64)*37 + 16*9},
		{"MaxEntries", MaxEntries, 4 << 20},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, the spec says %d", c.name, c.got, c.want)
		}
	}
}
