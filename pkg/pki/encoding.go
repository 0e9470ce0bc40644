package pki

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrMalformed is wrapped by every parse error: the bytes are not a valid encoding.
var ErrMalformed = errors.New("malformed")

// malformed returns an error wrapping ErrMalformed with a reason.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// reader consumes a byte slice front to back. The first short read sets err; later reads return
// zero values, so a parser checks err once where it matters.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.err = malformed("truncated %s", what)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(what string) uint8 {
	b := r.take(1, what)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16(what string) uint16 {
	b := r.take(2, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (r *reader) u32(what string) uint32 {
	b := r.take(4, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *reader) u64(what string) uint64 {
	b := r.take(8, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (r *reader) f64(what string) float64 { return math.Float64frombits(r.u64(what)) }

func (r *reader) array32(what string) (a [32]byte) {
	copy(a[:], r.take(32, what))
	return a
}

func (r *reader) str(what string) string {
	n := r.u8(what + " length")
	return string(r.take(int(n), what))
}

// strList reads u8 count || count * str, refusing more than max entries.
func (r *reader) strList(what string, max int) []string {
	n := int(r.u8(what + " count"))
	if r.err != nil {
		return nil
	}
	if n > max {
		r.err = malformed("%d %s, limit %d", n, what, max)
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.str(what)
	}
	return out
}

// end fails unless every byte was consumed.
func (r *reader) end(what string) error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return malformed("%d trailing bytes after %s", len(r.b), what)
	}
	return nil
}

func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
func appendF64(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(b, math.Float64bits(v))
}

// appendStrList writes u8 count || count * str. Callers validate counts and lengths first.
func appendStrList(b []byte, list []string) []byte {
	b = append(b, uint8(len(list)))
	for _, s := range list {
		b = append(b, uint8(len(s)))
		b = append(b, s...)
	}
	return b
}
