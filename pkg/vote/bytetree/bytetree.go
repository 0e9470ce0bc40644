// Package bytetree implements Verificatum's byte tree format (docs/spec/vote.md §2): the
// serialisation used by every file of a Verificatum proof directory and by every input to its
// random oracle. Parsing is strict (exact length, bounded depth, bounded total size) because
// proof directories are outside input.
package bytetree

import (
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	tagNode = 0x00
	tagLeaf = 0x01
	// headerSize is the tag byte plus the uint32 length or child count.
	headerSize = 5
)

// Limits bound what Parse accepts. Every field must be positive.
type Limits struct {
	// MaxBytes is the largest encoded tree accepted.
	MaxBytes int
	// MaxDepth is the deepest nesting accepted (a single leaf has depth 1).
	MaxDepth int
}

// DefaultLimits fit a proof of shuffle of 10^6 width-1 P-256 ciphertexts (about 170 MB per list)
// with room to spare, and the deepest tree Verificatum writes (depth 4) several times over.
func DefaultLimits() Limits { return Limits{MaxBytes: 1 << 30, MaxDepth: 16} }

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("bytetree: malformed")

// Tree is a byte tree: either a leaf holding bytes or a node holding ordered children.
type Tree struct {
	leaf     bool
	data     []byte
	children []*Tree
}

// Leaf returns a leaf holding b (not copied).
func Leaf(b []byte) *Tree { return &Tree{leaf: true, data: b} }

// Node returns a node with the given children (not copied).
func Node(children ...*Tree) *Tree {
	if children == nil {
		children = []*Tree{}
	}
	return &Tree{children: children}
}

// String returns a leaf holding the ASCII bytes of s.
func String(s string) *Tree { return Leaf([]byte(s)) }

// Uint32 returns a 4-byte big-endian leaf, as Verificatum encodes integers.
func Uint32(v uint32) *Tree { return Leaf(binary.BigEndian.AppendUint32(nil, v)) }

// IsLeaf reports whether t is a leaf.
func (t *Tree) IsLeaf() bool { return t.leaf }

// Data returns a leaf's bytes (nil for a node). The slice aliases the parsed input.
func (t *Tree) Data() []byte { return t.data }

// Children returns a node's children (nil for a leaf).
func (t *Tree) Children() []*Tree { return t.children }

// Len returns the number of children of a node or bytes of a leaf.
func (t *Tree) Len() int {
	if t.leaf {
		return len(t.data)
	}
	return len(t.children)
}

// Size returns the length of t's encoding.
func (t *Tree) Size() int {
	if t.leaf {
		return headerSize + len(t.data)
	}
	n := headerSize
	for _, c := range t.children {
		n += c.Size()
	}
	return n
}

// Encode returns the encoding of t.
func (t *Tree) Encode() []byte { return t.AppendTo(make([]byte, 0, t.Size())) }

// AppendTo appends the encoding of t to dst.
func (t *Tree) AppendTo(dst []byte) []byte {
	if t.leaf {
		dst = append(dst, tagLeaf)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(t.data)))
		return append(dst, t.data...)
	}
	dst = append(dst, tagNode)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(t.children)))
	for _, c := range t.children {
		dst = c.AppendTo(dst)
	}
	return dst
}

// Parse decodes exactly one byte tree that must span all of b. Leaves alias b.
func Parse(b []byte, lim Limits) (*Tree, error) {
	if lim.MaxBytes <= 0 || lim.MaxDepth <= 0 {
		return nil, fmt.Errorf("%w: invalid limits", ErrMalformed)
	}
	if len(b) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes exceeds the limit of %d", ErrMalformed, len(b), lim.MaxBytes)
	}
	t, n, err := parse(b, lim.MaxDepth)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b)-n)
	}
	return t, nil
}

func parse(b []byte, depth int) (*Tree, int, error) {
	if depth == 0 {
		return nil, 0, fmt.Errorf("%w: nesting too deep", ErrMalformed)
	}
	if len(b) < headerSize {
		return nil, 0, fmt.Errorf("%w: truncated header", ErrMalformed)
	}
	n := binary.BigEndian.Uint32(b[1:headerSize])
	rest := b[headerSize:]
	switch b[0] {
	case tagLeaf:
		if uint64(n) > uint64(len(rest)) {
			return nil, 0, fmt.Errorf("%w: leaf of %d bytes with %d left", ErrMalformed, n, len(rest))
		}
		return &Tree{leaf: true, data: rest[:n:n]}, headerSize + int(n), nil
	case tagNode:
		// Each child takes at least a header, so the declared count is checked against the
		// remaining bytes before anything is allocated.
		if uint64(n)*headerSize > uint64(len(rest)) {
			return nil, 0, fmt.Errorf("%w: node of %d children with %d bytes left", ErrMalformed, n, len(rest))
		}
		t := &Tree{children: make([]*Tree, n)}
		off := headerSize
		for i := range t.children {
			c, m, err := parse(b[off:], depth-1)
			if err != nil {
				return nil, 0, err
			}
			t.children[i] = c
			off += m
		}
		return t, off, nil
	default:
		return nil, 0, fmt.Errorf("%w: unknown tag 0x%02x", ErrMalformed, b[0])
	}
}
