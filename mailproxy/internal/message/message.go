// Package message parses the header of an RFC 5322 mail as submitted by a mail program, strips
// what identifies the sender's machine or habits before the mail enters the mixnet
// (DESIGN.md section 3 step 2), and writes delivery status notifications (RFC 3464) for mails
// that could not be delivered.
//
// The parser keeps every byte: Parse followed by Bytes gives back the input exactly, so a mail
// whose header needs no change is sent unchanged, and the body is never touched.
package message

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Limits on what Parse accepts; a mail program never comes near them.
const (
	// MaxHeaderSize bounds the header section (fields and their folding).
	MaxHeaderSize = 256 << 10
	// MaxFields bounds the number of header fields.
	MaxFields = 1000
	// maxNameLen bounds a field name.
	maxNameLen = 76
)

// Errors of Parse; all mean the mail is malformed (SMTP 554 5.6.0).
var (
	ErrNoHeader      = errors.New("message: no header/body separator (blank line) found")
	ErrHeaderTooLong = errors.New("message: header section too long")
	ErrTooManyFields = errors.New("message: too many header fields")
	ErrBadField      = errors.New("message: malformed header field")
)

// Field is one header field with its raw bytes: name, colon, value, folding and line ending.
type Field struct {
	Raw []byte
}

// Name is the field name as written.
func (f Field) Name() string {
	i := bytes.IndexByte(f.Raw, ':')
	return string(f.Raw[:i])
}

// Value is the unfolded field value without leading and trailing white space.
func (f Field) Value() string {
	i := bytes.IndexByte(f.Raw, ':')
	v := string(f.Raw[i+1:])
	v = strings.ReplaceAll(v, "\r\n", "")
	v = strings.ReplaceAll(v, "\n", "")
	return strings.TrimSpace(v)
}

// Is reports whether the field's name is name, ignoring case.
func (f Field) Is(name string) bool { return strings.EqualFold(f.Name(), name) }

// Message is a parsed mail: header fields, the blank separator line and the body, all raw.
type Message struct {
	Fields []Field
	// Sep is the blank line ending the header: "\r\n" or "\n".
	Sep  []byte
	Body []byte
}

// Parse splits a mail into header fields and body. It accepts CRLF or LF line endings and
// refuses a header without a terminating blank line, a field without a colon or with an invalid
// name, a continuation line before the first field, and over-limit headers.
func Parse(raw []byte) (*Message, error) {
	m := &Message{}
	rest := raw
	size := 0
	for {
		if len(rest) == 0 {
			return nil, ErrNoHeader
		}
		end := bytes.IndexByte(rest, '\n')
		if end < 0 {
			return nil, ErrNoHeader
		}
		line := rest[:end+1]
		if string(line) == "\r\n" || string(line) == "\n" {
			m.Sep = line
			m.Body = rest[end+1:]
			return m, nil
		}
		size += len(line)
		if size > MaxHeaderSize {
			return nil, ErrHeaderTooLong
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(m.Fields) == 0 {
				return nil, fmt.Errorf("%w: continuation line before the first field", ErrBadField)
			}
			f := &m.Fields[len(m.Fields)-1]
			f.Raw = raw[len(raw)-len(rest)-len(f.Raw) : len(raw)-len(rest)+len(line)]
			rest = rest[end+1:]
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 1 || colon > maxNameLen {
			return nil, fmt.Errorf("%w: %q", ErrBadField, trunc(line))
		}
		for _, c := range line[:colon] {
			if c < 33 || c > 126 {
				return nil, fmt.Errorf("%w: invalid field name %q", ErrBadField, trunc(line[:colon]))
			}
		}
		if len(m.Fields) == MaxFields {
			return nil, ErrTooManyFields
		}
		m.Fields = append(m.Fields, Field{Raw: line})
		rest = rest[end+1:]
	}
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// Bytes encodes the message: the fields, the separator and the body, as parsed or modified.
func (m *Message) Bytes() []byte {
	n := len(m.Sep) + len(m.Body)
	for _, f := range m.Fields {
		n += len(f.Raw)
	}
	out := make([]byte, 0, n)
	for _, f := range m.Fields {
		out = append(out, f.Raw...)
	}
	out = append(out, m.Sep...)
	return append(out, m.Body...)
}

// Get returns the value of the first field named name, or "".
func (m *Message) Get(name string) string {
	for _, f := range m.Fields {
		if f.Is(name) {
			return f.Value()
		}
	}
	return ""
}

// Has reports whether a field named name is present.
func (m *Message) Has(name string) bool {
	for _, f := range m.Fields {
		if f.Is(name) {
			return true
		}
	}
	return false
}

// Remove deletes every field named name and reports how many it removed.
func (m *Message) Remove(name string) int {
	out := m.Fields[:0]
	n := 0
	for _, f := range m.Fields {
		if f.Is(name) {
			n++
			continue
		}
		out = append(out, f)
	}
	m.Fields = out
	return n
}

// eol is the message's line ending, taken from the separator line.
func (m *Message) eol() string {
	if len(m.Sep) == 1 {
		return "\n"
	}
	return "\r\n"
}

// Set replaces the first field named name (removing the others) or appends one.
func (m *Message) Set(name, value string) {
	raw := []byte(name + ": " + value + m.eol())
	for i, f := range m.Fields {
		if f.Is(name) {
			m.Fields[i] = Field{Raw: raw}
			rest := m.Fields[i+1:]
			kept := rest[:0]
			for _, g := range rest {
				if !g.Is(name) {
					kept = append(kept, g)
				}
			}
			m.Fields = append(m.Fields[:i+1], kept...)
			return
		}
	}
	m.Fields = append(m.Fields, Field{Raw: raw})
}

// HeaderBytes is the header section with its separator (for a DSN's text/rfc822-headers part).
func (m *Message) HeaderBytes() []byte {
	var b []byte
	for _, f := range m.Fields {
		b = append(b, f.Raw...)
	}
	return append(b, m.Sep...)
}
