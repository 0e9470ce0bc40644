package message

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseMarkerStrip(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		marker Marker
		strip  string
	}{
		{"mixable", "Received: from a\r\n\tby b\r\nX-PANORAMIX-Mixable: yes\r\nSubject: hi\r\n\r\nbody\r\n",
			Mixable, "Received: from a\r\n\tby b\r\nSubject: hi\r\n\r\nbody\r\n"},
		{"case and space", "x-panoramix-mixable:   YES  \nSubject: s\n\nb\n", Mixable, "Subject: s\n\nb\n"},
		{"folded", "X-PANORAMIX-Mixable:\r\n yes\r\nA: b\r\n\r\n", Mixable, "A: b\r\n\r\n"},
		{"absent", "Subject: hi\r\n\r\nX-PANORAMIX-Mixable: yes\r\n", Absent, "Subject: hi\r\n\r\nX-PANORAMIX-Mixable: yes\r\n"},
		{"garbage value", "X-PANORAMIX-Mixable: yes please\r\n\r\n", Invalid, "\r\n"},
		{"binary value", "X-PANORAMIX-Mixable: \x00\xff\r\n\r\n", Invalid, "\r\n"},
		{"empty value", "X-PANORAMIX-Mixable:\r\n\r\n", Invalid, "\r\n"},
		{"conflicting", "X-PANORAMIX-Mixable: yes\r\nX-PANORAMIX-Mixable: no\r\n\r\n", Invalid, "\r\n"},
		{"longer name", "X-PANORAMIX-Mixable-Not: yes\r\n\r\n", Absent, "X-PANORAMIX-Mixable-Not: yes\r\n\r\n"},
		{"no body", "X-PANORAMIX-Mixable: yes", Mixable, ""},
		{"empty", "", Absent, ""},
	}
	for _, tt := range tests {
		m, err := Parse([]byte(tt.in))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !bytes.Equal(m.Bytes(), []byte(tt.in)) {
			t.Errorf("%s: re-encoded %q", tt.name, m.Bytes())
		}
		if got := m.Marker(); got != tt.marker {
			t.Errorf("%s: marker %v, want %v", tt.name, got, tt.marker)
		}
		if got := string(m.Strip()); got != tt.strip {
			t.Errorf("%s: stripped %q, want %q", tt.name, got, tt.strip)
		}
	}
}

func TestValue(t *testing.T) {
	m, err := Parse([]byte("Subject: first\r\n second line\r\nsubject: other\r\nMessage-ID: <x@y>\r\n\r\nSubject: body\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Value("subject"); got != "first second line" {
		t.Errorf("Value(subject) = %q", got)
	}
	if got := m.Value("Message-Id"); got != "<x@y>" {
		t.Errorf("Value(Message-Id) = %q", got)
	}
	if got := m.Value("To"); got != "" {
		t.Errorf("Value(To) = %q, want empty", got)
	}
}

func TestParseMalformed(t *testing.T) {
	for _, in := range []string{
		"not a header line\r\n\r\nbody\r\n",
		" continuation first: x\r\n\r\n",
		": empty name\r\n\r\n",
		"Sub ject: space in name\r\n\r\n",
		"Subject\r\n: colon on the next line\r\n\r\n",
		"N\xe4me: 8-bit name\r\n\r\n",
	} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) accepted a malformed header section", in)
		}
	}
}

func TestParseHeaderLimit(t *testing.T) {
	line := "X-Pad: " + strings.Repeat("a", 990) + "\r\n"
	big := strings.Repeat(line, MaxHeaderSize/len(line)+1) + "\r\nbody\r\n"
	if _, err := Parse([]byte(big)); err == nil {
		t.Fatalf("a header section of %d bytes was accepted (limit %d)", len(big), MaxHeaderSize)
	}
	ok := strings.Repeat(line, MaxHeaderSize/len(line)-1) + "\r\nbody\r\n"
	if _, err := Parse([]byte(ok)); err != nil {
		t.Fatalf("a header section under the limit: %v", err)
	}
	// One field folded over many lines counts the same.
	folded := "Subject: x\r\n" + strings.Repeat(" "+strings.Repeat("a", 998)+"\r\n", MaxHeaderSize/1000+1) + "\r\n"
	if _, err := Parse([]byte(folded)); err == nil {
		t.Fatal("a folded field over the limit was accepted")
	}
}

func seeds(t testing.TB) [][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestFuzzSeedsPresent(t *testing.T) {
	if n := len(seeds(t)); n < 5 {
		t.Fatalf("%d fuzz seeds in testdata/fuzz, want at least 5", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		if !bytes.Equal(m.Bytes(), data) {
			t.Fatalf("re-encoding changed the message")
		}
		s := m.Strip()
		if m.Marker() == Absent && !bytes.Equal(s, data) {
			t.Fatal("Strip changed a message without the marker")
		}
		m2, err := Parse(s)
		if err != nil {
			t.Fatalf("stripped message does not parse: %v", err)
		}
		if m2.Marker() != Absent {
			t.Fatal("stripped message still carries the marker")
		}
	})
}
