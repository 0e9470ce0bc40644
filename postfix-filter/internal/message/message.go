// Package message finds and removes the X-PANORAMIX-Mixable header field in a mail message
// (RFC 5322 header section) without changing anything else: a parsed message re-encodes to the
// identical bytes, and Strip removes exactly the bytes of the marker fields.
//
// The parser is deliberately lenient, because Postfix already accepted the mail: a header
// section it cannot read is reported by Parse as an error, and the filter then treats the message
// as not mixable and hands it back to Postfix unchanged.
package message

import (
	"bytes"
	"errors"
	"fmt"
)

// MixableField is the header field that asks for delivery through the mixnet (DESIGN.md
// section 1). Its value must be "yes" (any case, surrounding white space ignored).
const MixableField = "X-PANORAMIX-Mixable"

// MaxHeaderSize bounds the header section that Parse reads; a longer header section is an error
// (the filter then re-injects the message unchanged).
const MaxHeaderSize = 1 << 20

// ErrMalformed says the header section cannot be read.
var ErrMalformed = errors.New("message: malformed header section")

// Field is one header field with its raw bytes: name, colon, value and every continuation line,
// line endings included.
type Field struct {
	Raw []byte
}

// Name returns the field name (the bytes before the colon).
func (f Field) Name() string {
	i := bytes.IndexByte(f.Raw, ':')
	return string(f.Raw[:i])
}

// Value returns the unfolded value without surrounding white space.
func (f Field) Value() string {
	i := bytes.IndexByte(f.Raw, ':')
	v := f.Raw[i+1:]
	v = bytes.ReplaceAll(v, []byte("\r\n"), nil)
	v = bytes.ReplaceAll(v, []byte("\n"), nil)
	return string(bytes.TrimSpace(v))
}

// Message is a parsed message: its header fields in order, then the rest (the empty line that
// ends the header section and the body), kept as raw bytes.
type Message struct {
	Fields []Field
	// Rest starts with the line ending that separates header and body ("\r\n" or "\n"), or is
	// empty when the message ends without one.
	Rest []byte
}

// Parse splits data into header fields and the rest. A field starts on a line with a name of
// printable ASCII without a colon (RFC 5322 section 3.6.8) and a colon; lines that start with a
// space or a tab continue it. The header section ends at the first empty line or at the end of
// data.
func Parse(data []byte) (*Message, error) {
	m := &Message{}
	rest := data
	for len(rest) > 0 {
		if rest[0] == '\n' || (rest[0] == '\r' && len(rest) > 1 && rest[1] == '\n') {
			break
		}
		if len(data)-len(rest) > MaxHeaderSize {
			return nil, fmt.Errorf("%w: header section over %d bytes", ErrMalformed, MaxHeaderSize)
		}
		if rest[0] == ' ' || rest[0] == '\t' {
			return nil, fmt.Errorf("%w: continuation line without a field", ErrMalformed)
		}
		colon := bytes.IndexByte(rest, ':')
		nl := bytes.IndexByte(rest, '\n')
		if colon < 1 || (nl >= 0 && nl < colon) {
			return nil, fmt.Errorf("%w: line without a field name and colon", ErrMalformed)
		}
		for _, c := range rest[:colon] {
			if c < 33 || c > 126 {
				return nil, fmt.Errorf("%w: field name with byte %#x", ErrMalformed, c)
			}
		}
		// The field runs to the end of its last continuation line.
		end := 0
		for {
			nl := bytes.IndexByte(rest[end:], '\n')
			if nl < 0 {
				end = len(rest)
				break
			}
			end += nl + 1
			if end >= len(rest) || (rest[end] != ' ' && rest[end] != '\t') {
				break
			}
		}
		m.Fields = append(m.Fields, Field{Raw: rest[:end:end]})
		rest = rest[end:]
	}
	if len(data)-len(rest) > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header section over %d bytes", ErrMalformed, MaxHeaderSize)
	}
	m.Rest = rest
	return m, nil
}

// Bytes encodes the message: the fields' raw bytes and the rest.
func (m *Message) Bytes() []byte {
	n := len(m.Rest)
	for _, f := range m.Fields {
		n += len(f.Raw)
	}
	out := make([]byte, 0, n)
	for _, f := range m.Fields {
		out = append(out, f.Raw...)
	}
	return append(out, m.Rest...)
}

// Marker says what the message's X-PANORAMIX-Mixable fields ask for.
type Marker int

const (
	// Absent: no X-PANORAMIX-Mixable field.
	Absent Marker = iota
	// Mixable: at least one field, and every one says "yes".
	Mixable
	// Invalid: a field with another value; the message is not sent through the mixnet.
	Invalid
)

func (k Marker) String() string {
	switch k {
	case Absent:
		return "absent"
	case Mixable:
		return "mixable"
	default:
		return "invalid"
	}
}

func isMixable(f Field) bool {
	return len(f.Raw) > len(MixableField) && f.Raw[len(MixableField)] == ':' &&
		bytes.EqualFold(f.Raw[:len(MixableField)], []byte(MixableField))
}

// Marker reports the message's X-PANORAMIX-Mixable fields.
func (m *Message) Marker() Marker {
	k := Absent
	for _, f := range m.Fields {
		if !isMixable(f) {
			continue
		}
		if !equalFoldASCII(f.Value(), "yes") {
			return Invalid
		}
		k = Mixable
	}
	return k
}

func equalFoldASCII(a, b string) bool { return bytes.EqualFold([]byte(a), []byte(b)) }

// Strip returns the message's bytes without its X-PANORAMIX-Mixable fields: what enters the
// mixnet.
func (m *Message) Strip() []byte {
	kept := &Message{Rest: m.Rest}
	for _, f := range m.Fields {
		if !isMixable(f) {
			kept.Fields = append(kept.Fields, f)
		}
	}
	return kept.Bytes()
}

// Value returns the unfolded value of the first field called name (any case), or "".
func (m *Message) Value(name string) string {
	for _, f := range m.Fields {
		if len(f.Raw) > len(name) && f.Raw[len(name)] == ':' && bytes.EqualFold(f.Raw[:len(name)], []byte(name)) {
			return f.Value()
		}
	}
	return ""
}
