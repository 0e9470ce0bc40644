package keys

import (
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
)

// KeySize is the size in bytes of every key in this package: Ed25519 public
// keys and seeds, X25519 public keys and scalars.
const KeySize = 32

// textSize is the length of the text form of a public key.
const textSize = 2 * KeySize

// ErrInvalidKey is wrapped by every error about malformed or unusable key
// bytes or key text.
var ErrInvalidKey = errors.New("invalid key")

// ErrWiped is returned by functions that can report an error when given a
// wiped or uninitialised private key (the others panic).
var ErrWiped = errors.New("keys: use of wiped or uninitialised key")

// parseHex decodes the strict text form of a 32-byte key: exactly 64
// lowercase hex characters. what names the key role for the error.
func parseHex(what, s string) ([KeySize]byte, error) {
	var out [KeySize]byte
	if len(s) != textSize {
		return out, fmt.Errorf("keys: %s: want %d lowercase hex characters, got %d characters: %w",
			what, textSize, len(s), ErrInvalidKey)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			return out, fmt.Errorf("keys: %s: uppercase hex character %q at offset %d (only lowercase is accepted): %w",
				what, c, i, ErrInvalidKey)
		default:
			return out, fmt.Errorf("keys: %s: invalid character %q at offset %d (want lowercase hex): %w",
				what, c, i, ErrInvalidKey)
		}
	}
	if _, err := hex.Decode(out[:], []byte(s)); err != nil {
		// Unreachable after the checks above; kept so a change there cannot
		// silently accept a bad key.
		return [KeySize]byte{}, fmt.Errorf("keys: %s: %w: %w", what, ErrInvalidKey, err)
	}
	return out, nil
}

// appendHex appends the lowercase hex form of k to b.
func appendHex(b []byte, k *[KeySize]byte) []byte {
	return hex.AppendEncode(b, k[:])
}

// equal32 compares two keys in constant time.
func equal32(a, b *[KeySize]byte) bool {
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// isZero32 reports in constant time whether k is all zero.
func isZero32(k *[KeySize]byte) bool {
	var acc byte
	for _, c := range k {
		acc |= c
	}
	return subtle.ConstantTimeByteEq(acc, 0) == 1
}

// wipe zeroes b. clear on a slice compiles to a memclr that the compiler does
// not remove, since the bytes stay reachable through the key.
func wipe(b []byte) {
	clear(b)
}
