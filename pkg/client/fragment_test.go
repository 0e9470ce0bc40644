package client

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fragment and testdata/ack seed files")

// seedCapacity is the fragment capacity the seed files in testdata/fragment are written for.
const seedCapacity = 64

func TestFragmentCapacityDefault(t *testing.T) {
	// docs/spec/fragment.md section 2: 16384 - 6 - 648 - 25.
	if got := FragmentCapacity(sphinx.DefaultGeometry()); got != 15705 {
		t.Fatalf("capacity %d, want 15705", got)
	}
}

func TestSplitJoin(t *testing.T) {
	const c = 10
	for _, n := range []int{0, 1, 9, 10, 11, 19, 20, 21, 100, 101} {
		data := bytes.Repeat([]byte{0xab}, n)
		for i := range data {
			data[i] = byte(i)
		}
		id := MessageID{1, 2, 3}
		frags, err := Split(id, data, c)
		if err != nil {
			t.Fatal(err)
		}
		want := max(1, (n+c-1)/c)
		if len(frags) != want {
			t.Fatalf("%d bytes: %d fragments, want %d", n, len(frags), want)
		}
		var parsed []*Fragment
		for i, f := range frags {
			if i < len(frags)-1 && len(f.Data) != c {
				t.Fatalf("%d bytes: fragment %d holds %d, want %d", n, i, len(f.Data), c)
			}
			if i == len(frags)-1 && n > 0 && len(f.Data) == 0 {
				t.Fatalf("%d bytes: empty last fragment", n)
			}
			enc := f.Marshal()
			p, err := ParseFragment(enc, c)
			if err != nil {
				t.Fatalf("%d bytes: fragment %d: %v", n, i, err)
			}
			if !bytes.Equal(p.Marshal(), enc) {
				t.Fatal("re-encoding differs")
			}
			parsed = append(parsed, p)
		}
		// Reverse order: Join must not depend on arrival order.
		for i, j := 0, len(parsed)-1; i < j; i, j = i+1, j-1 {
			parsed[i], parsed[j] = parsed[j], parsed[i]
		}
		got, err := Join(parsed)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: join: %v", n, err)
		}
	}
}

func TestSplitLimit(t *testing.T) {
	if _, err := Split(MessageID{}, make([]byte, MaxFragments*4), 4); err != nil {
		t.Fatalf("exactly at the limit: %v", err)
	}
	if _, err := Split(MessageID{}, make([]byte, MaxFragments*4+1), 4); err == nil {
		t.Fatal("a message over MaxFragments fragments was split")
	}
}

func TestJoinRefuses(t *testing.T) {
	frags, _ := Split(MessageID{1}, make([]byte, 25), 10)
	if _, err := Join(frags[:2]); err == nil {
		t.Fatal("joined with a fragment missing")
	}
	dup := []*Fragment{frags[0], frags[0], frags[2]}
	if _, err := Join(dup); err == nil {
		t.Fatal("joined with a duplicate index")
	}
	other := *frags[1]
	other.ID = MessageID{2}
	if _, err := Join([]*Fragment{frags[0], &other, frags[2]}); err == nil {
		t.Fatal("joined fragments of two messages")
	}
}

func fragmentBytes(id byte, index, count uint16, total uint32, data int) []byte {
	f := &Fragment{ID: MessageID{id}, Index: index, Count: count, TotalLength: total, Data: bytes.Repeat([]byte{0x5a}, data)}
	return f.Marshal()
}

// seedFiles are the fuzz seeds and strict-parsing cases: ok-* must parse (and re-encode to the
// same bytes), bad-* must be refused.
func seedFiles() map[string][]byte {
	over := fragmentBytes(1, 0, 1, 10, 10)
	over[0] = 2
	big := fragmentBytes(1, 0, MaxFragments+1, uint32(MaxFragments+1)*seedCapacity, seedCapacity)
	ack := (&Ack{ID: MessageID{7}, Index: 3, Status: AckStored}).Marshal()
	ackBadStatus := bytes.Clone(ack)
	ackBadStatus[19] = byte(maxAckStatus) + 1
	ackBadVersion := bytes.Clone(ack)
	ackBadVersion[0] = 0
	return map[string][]byte{
		"fragment/ok-empty.bin":               fragmentBytes(1, 0, 1, 0, 0),
		"fragment/ok-single.bin":              fragmentBytes(1, 0, 1, 10, 10),
		"fragment/ok-full-single.bin":         fragmentBytes(1, 0, 1, seedCapacity, seedCapacity),
		"fragment/ok-first-of-3.bin":          fragmentBytes(2, 0, 3, 2*seedCapacity+1, seedCapacity),
		"fragment/ok-last-of-3.bin":           fragmentBytes(2, 2, 3, 2*seedCapacity+1, 1),
		"fragment/ok-max-count.bin":           fragmentBytes(3, MaxFragments-1, MaxFragments, MaxFragments*seedCapacity, seedCapacity),
		"fragment/bad-version.bin":            over,
		"fragment/bad-short-header.bin":       fragmentBytes(1, 0, 1, 0, 0)[:FragmentHeaderSize-1],
		"fragment/bad-count-zero.bin":         fragmentBytes(1, 0, 0, 0, 0),
		"fragment/bad-count-over-limit.bin":   big,
		"fragment/bad-index.bin":              fragmentBytes(1, 3, 3, 2*seedCapacity+1, 1),
		"fragment/bad-total-too-large.bin":    fragmentBytes(1, 0, 2, 2*seedCapacity+1, seedCapacity),
		"fragment/bad-too-many-fragments.bin": fragmentBytes(1, 0, 3, 2*seedCapacity, seedCapacity),
		"fragment/bad-empty-last.bin":         fragmentBytes(1, 1, 2, seedCapacity, 0),
		"fragment/bad-short-middle.bin":       fragmentBytes(1, 1, 3, 2*seedCapacity+1, seedCapacity-1),
		"fragment/bad-trailing.bin":           fragmentBytes(1, 0, 1, 10, 11),
		"fragment/bad-empty-two.bin":          fragmentBytes(1, 0, 2, 0, 0),
		"ack/ok-stored.bin":                   ack,
		"ack/ok-over-quota.bin":               (&Ack{ID: MessageID{7}, Index: 4095, Status: AckOverQuota}).Marshal(),
		"ack/bad-status.bin":                  ackBadStatus,
		"ack/bad-version.bin":                 ackBadVersion,
		"ack/bad-short.bin":                   ack[:AckSize-1],
		"ack/bad-long.bin":                    append(bytes.Clone(ack), 0),
		"ack/ok-answer.bin":                   (&Ack{ID: MessageID{8}, Index: 0, Status: AckStored, Answer: []byte("receipt")}).Marshal(),
		"ack/ok-refused.bin":                  (&Ack{ID: MessageID{9}, Index: 0, Status: AckRefused, Answer: []byte("not on the voter list")}).Marshal(),
		"ack/ok-answer-max.bin":               (&Ack{ID: MessageID{10}, Index: 1, Status: AckStored, Answer: bytes.Repeat([]byte{0xa5}, MaxAckAnswer)}).Marshal(),
		"ack/bad-answer-empty.bin":            append(bytes.Clone(ack), 0, 0),
		"ack/bad-answer-length.bin":           append(bytes.Clone(ack), 0, 3, 'a', 'b'),
		"ack/bad-answer-over.bin": func() []byte {
			b := binary.BigEndian.AppendUint16(bytes.Clone(ack), MaxAckAnswer+1)
			return append(b, bytes.Repeat([]byte{1}, MaxAckAnswer+1)...)
		}(),
		"ack/bad-index.bin": func() []byte {
			b := bytes.Clone(ack)
			binary.BigEndian.PutUint16(b[17:], MaxFragments)
			return b
		}(),
	}
}

func TestWriteSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to rewrite testdata")
	}
	for name, b := range seedFiles() {
		p := filepath.Join("testdata", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readSeeds(t testing.TB, dir string) map[string][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestSeedsNotEmpty(t *testing.T) {
	for _, dir := range []string{"fragment", "ack", "mailchunk"} {
		s := readSeeds(t, dir)
		var ok, bad int
		for name := range s {
			if strings.HasPrefix(name, "ok-") {
				ok++
			} else {
				bad++
			}
		}
		if ok == 0 || bad == 0 {
			t.Fatalf("testdata/%s: %d ok and %d bad seeds; want some of each", dir, ok, bad)
		}
	}
}

func TestSeedsMatchGenerator(t *testing.T) {
	files := seedFiles()
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("testdata/%s differs from the generator (%v); regenerate on purpose with -update-seeds", name, err)
		}
	}
}

func TestStrictParsing(t *testing.T) {
	for name, b := range readSeeds(t, "fragment") {
		f, err := ParseFragment(b, seedCapacity)
		if strings.HasPrefix(name, "ok-") {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else if !bytes.Equal(f.Marshal(), b) {
				t.Errorf("%s: re-encoding differs", name)
			}
		} else if err == nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: parsed (err %v)", name, err)
		}
	}
	for name, b := range readSeeds(t, "ack") {
		a, err := ParseAck(b)
		if strings.HasPrefix(name, "ok-") {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else if !bytes.Equal(a.Marshal(), b) {
				t.Errorf("%s: re-encoding differs", name)
			}
		} else if err == nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: parsed (err %v)", name, err)
		}
	}
}

func TestMessageIDText(t *testing.T) {
	id := MessageID{0xde, 0xad, 0xbe, 0xef}
	got, err := ParseMessageID(id.String())
	if err != nil || got != id {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"", "DEADBEEF000000000000000000000000", id.String() + "00", "zz" + id.String()[2:]} {
		if _, err := ParseMessageID(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseFragment(f *testing.F) {
	for _, b := range readSeeds(f, "fragment") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ParseFragment(b, seedCapacity)
		if err != nil {
			return
		}
		if !bytes.Equal(fr.Marshal(), b) {
			t.Fatal("a parsed fragment re-encodes differently")
		}
		if int(fr.Index) >= int(fr.Count) || fr.Count > MaxFragments || len(fr.Data) > seedCapacity {
			t.Fatalf("parsed an out-of-range fragment: %+v", fr)
		}
	})
}

func FuzzParseAck(f *testing.F) {
	for _, b := range readSeeds(f, "ack") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAck(b)
		if err != nil {
			return
		}
		if !bytes.Equal(a.Marshal(), b) {
			t.Fatal("a parsed ack re-encodes differently")
		}
	})
}

// FragmentIDs reads id and index from bytes that do not parse as a fragment, and refuses when
// they are cut short or the index is out of range.
func TestFragmentIDs(t *testing.T) {
	frags, err := Split(MessageID{7, 7}, make([]byte, 300), 100)
	if err != nil {
		t.Fatal(err)
	}
	b := frags[2].Marshal()
	bad := append([]byte{}, b[:FragmentHeaderSize]...) // header only: does not parse
	if _, err := ParseFragment(bad, 100); err == nil {
		t.Fatal("the truncated fragment parsed")
	}
	if id, index, ok := FragmentIDs(bad); !ok || id != (MessageID{7, 7}) || index != 2 {
		t.Fatalf("got %x %d %v", id, index, ok)
	}
	if _, _, ok := FragmentIDs(bad[:1+MessageIDSize+1]); ok {
		t.Error("accepted bytes without a whole index")
	}
	binary.BigEndian.PutUint16(bad[1+MessageIDSize:], MaxFragments)
	if _, _, ok := FragmentIDs(bad); ok {
		t.Error("accepted an index out of range")
	}
}
