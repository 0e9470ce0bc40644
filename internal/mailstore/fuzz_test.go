package mailstore

import (
	"bufio"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Mailbox names and flags come from IMAP clients. The store does not parse them into another
// form; it validates and canonicalises them, so the property checked is that canonicalising is
// idempotent (the canonical form is its own canonical form) and within the limits.

func loadSeeds(t testing.TB, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var seeds []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := strconv.Unquote(line)
		if err != nil {
			t.Fatalf("%s:%d: %v", file, n, err)
		}
		seeds = append(seeds, s)
	}
	return seeds
}

func TestFuzzSeedsNotEmpty(t *testing.T) {
	for _, file := range []string{"testdata/mailbox-names.txt", "testdata/flags.txt"} {
		if len(loadSeeds(t, file)) == 0 {
			t.Errorf("%s: no seeds", file)
		}
	}
}

func FuzzCanonicalMailbox(f *testing.F) {
	for _, s := range loadSeeds(f, "testdata/mailbox-names.txt") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		c, err := canonicalMailbox(name)
		if err != nil {
			return
		}
		if again, err := canonicalMailbox(c); err != nil || again != c {
			t.Fatalf("canonicalMailbox(%q) = %q, but that canonicalises to %q, %v", name, c, again, err)
		}
		if c != Inbox && (c != name || len(c) > MaxMailboxNameSize || !utf8.ValidString(c)) {
			t.Fatalf("canonicalMailbox(%q) = %q", name, c)
		}
	})
}

func FuzzCanonicalFlags(f *testing.F) {
	for _, s := range loadSeeds(f, "testdata/flags.txt") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		c, err := canonicalFlags(strings.Fields(list))
		if err != nil {
			return
		}
		again, err := canonicalFlags(c)
		if err != nil || !slices.Equal(again, c) {
			t.Fatalf("canonicalFlags(%q) = %q, but that canonicalises to %q, %v", list, c, again, err)
		}
		if len(c) > MaxFlagsPerMessage {
			t.Fatalf("%d flags accepted", len(c))
		}
		// The stored form (flags joined by spaces) must decode to the same list.
		m, err := decodeMeta(uidKey(1), encodeMeta(time.Unix(0, 0), c))
		if err != nil || !slices.Equal(m.Flags, c) && !(len(c) == 0 && len(m.Flags) == 0) {
			t.Fatalf("flags %q stored and read back as %q, %v", c, m.Flags, err)
		}
	})
}
