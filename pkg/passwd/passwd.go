// Package passwd hashes and verifies user passwords with argon2id (RFC 9106), stored as PHC
// strings:
//
//	$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>
//
// with salt and hash in unpadded standard base64. The provider's IMAP server verifies against
// these hashes and mixctl writes them. Parsing is strict (one canonical form, so a parsed string
// re-encodes to the same bytes) and bounded: a user database with absurd cost parameters is
// refused instead of letting one login exhaust the server's memory or CPU.
package passwd

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Default cost parameters. RFC 9106 section 4 recommends, when 2 GiB per hash is too much, t=3
// passes over m=64 MiB with p=4 lanes; that is the choice here. On the 2-core machines this project
// targets one hash takes on the order of 100 ms, which is acceptable for an IMAP login and makes a
// stolen database expensive to brute-force. Logins are rate-limited and concurrent verifications
// bounded by the server, so the 64 MiB per verification cannot be multiplied by an attacker.
const (
	DefaultMemoryKiB = 64 * 1024
	DefaultTime      = 3
	DefaultThreads   = 4
	SaltSize         = 16 // 128 bits, RFC 9106 recommendation
	KeySize          = 32 // 256-bit tag
)

// Limits accepted when parsing a stored hash. They bound what one Verify can cost, so that a bad
// or hostile user database cannot make the server allocate gigabytes or spin for minutes.
const (
	MaxMemoryKiB = 1024 * 1024 // 1 GiB
	MaxTime      = 32
	MaxThreads   = 64
	MinSaltSize  = 8 // RFC 9106 requires at least 8 bytes
	MaxSaltSize  = 64
	MinKeySize   = 16
	MaxKeySize   = 64
	// MaxPasswordSize bounds the password given to Hash and Verify; IMAP literals are limited
	// elsewhere, this keeps the hash input bounded regardless of the caller.
	MaxPasswordSize = 1024
	// MaxEncodedSize bounds the length of a PHC string before parsing starts.
	MaxEncodedSize = 256
)

const (
	algorithm = "argon2id"
	version   = argon2.Version // 0x13 = 19
)

// ErrMismatch is returned by Verify when the password does not match the hash.
var ErrMismatch = errors.New("passwd: password does not match")

// ErrPasswordTooLong is returned for passwords longer than MaxPasswordSize.
var ErrPasswordTooLong = errors.New("passwd: password too long")

// Params are argon2id cost parameters.
type Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// DefaultParams returns the parameters Hash uses.
func DefaultParams() Params {
	return Params{MemoryKiB: DefaultMemoryKiB, Time: DefaultTime, Threads: DefaultThreads}
}

// Validate checks the parameters against the limits.
func (p Params) Validate() error {
	switch {
	case p.Threads < 1 || int(p.Threads) > MaxThreads:
		return fmt.Errorf("passwd: parallelism p=%d outside 1..%d", p.Threads, MaxThreads)
	case p.Time < 1 || p.Time > MaxTime:
		return fmt.Errorf("passwd: time cost t=%d outside 1..%d", p.Time, MaxTime)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > MaxMemoryKiB:
		// argon2 needs at least 8 KiB per lane.
		return fmt.Errorf("passwd: memory m=%d KiB outside %d..%d", p.MemoryKiB, 8*uint32(p.Threads), MaxMemoryKiB)
	}
	return nil
}

// PHC is a parsed argon2id PHC string.
type PHC struct {
	Params Params
	Salt   []byte
	Key    []byte
}

// String encodes h as a PHC string.
func (h *PHC) String() string {
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s", algorithm, version,
		h.Params.MemoryKiB, h.Params.Time, h.Params.Threads,
		base64.RawStdEncoding.EncodeToString(h.Salt), base64.RawStdEncoding.EncodeToString(h.Key))
}

// Hash hashes password with the default parameters and a fresh random salt, and returns the PHC
// string.
func Hash(password string) (string, error) {
	return HashWithParams(rand.Reader, password, DefaultParams())
}

// HashWithParams hashes password with the given parameters and a salt read from rng. Tests use it
// with cheap parameters; production code uses Hash.
func HashWithParams(rng io.Reader, password string, p Params) (string, error) {
	if len(password) > MaxPasswordSize {
		return "", ErrPasswordTooLong
	}
	if err := p.Validate(); err != nil {
		return "", err
	}
	salt := make([]byte, SaltSize)
	if _, err := io.ReadFull(rng, salt); err != nil {
		return "", fmt.Errorf("passwd: reading salt: %w", err)
	}
	h := PHC{Params: p, Salt: salt, Key: argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, KeySize)}
	return h.String(), nil
}

// Verify checks password against the PHC string encoded. It returns nil on a match, ErrMismatch
// on a wrong password, and another error when encoded is not a valid hash.
func Verify(encoded, password string) error {
	h, err := Parse(encoded)
	if err != nil {
		return err
	}
	if len(password) > MaxPasswordSize {
		return ErrPasswordTooLong
	}
	key := argon2.IDKey([]byte(password), h.Salt, h.Params.Time, h.Params.MemoryKiB, h.Params.Threads, uint32(len(h.Key)))
	defer clear(key)
	if subtle.ConstantTimeCompare(key, h.Key) != 1 {
		return ErrMismatch
	}
	return nil
}

// Parse parses a PHC argon2id string strictly: exactly the field order Hash.String writes,
// decimal numbers without sign or leading zeros, canonical unpadded base64, and every value within
// the limits above.
func Parse(encoded string) (*PHC, error) {
	if len(encoded) > MaxEncodedSize {
		return nil, fmt.Errorf("passwd: hash string longer than %d bytes", MaxEncodedSize)
	}
	fields := strings.Split(encoded, "$")
	if len(fields) != 6 || fields[0] != "" {
		return nil, errors.New("passwd: malformed hash: want $argon2id$v=19$m=..,t=..,p=..$salt$hash")
	}
	if fields[1] != algorithm {
		return nil, fmt.Errorf("passwd: unsupported algorithm %q (want %s)", fields[1], algorithm)
	}
	v, ok := strings.CutPrefix(fields[2], "v=")
	if !ok {
		return nil, errors.New("passwd: malformed version field")
	}
	if n, err := parseDecimal(v, 0xff); err != nil || n != version {
		return nil, fmt.Errorf("passwd: unsupported argon2 version %q (want %d)", v, version)
	}
	params := strings.Split(fields[3], ",")
	if len(params) != 3 {
		return nil, errors.New("passwd: malformed parameters: want m=KiB,t=passes,p=lanes")
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		s, ok := strings.CutPrefix(params[i], name)
		if !ok {
			return nil, fmt.Errorf("passwd: malformed parameters: field %d is not %s", i+1, name[:1])
		}
		n, err := parseDecimal(s, 1<<32-1)
		if err != nil {
			return nil, fmt.Errorf("passwd: parameter %s: %w", name[:1], err)
		}
		vals[i] = n
	}
	if vals[2] > MaxThreads {
		return nil, fmt.Errorf("passwd: parallelism p=%d above %d", vals[2], MaxThreads)
	}
	h := &PHC{Params: Params{MemoryKiB: uint32(vals[0]), Time: uint32(vals[1]), Threads: uint8(vals[2])}}
	if err := h.Params.Validate(); err != nil {
		return nil, err
	}
	var err error
	if h.Salt, err = decodeB64(fields[4], MinSaltSize, MaxSaltSize); err != nil {
		return nil, fmt.Errorf("passwd: salt: %w", err)
	}
	if h.Key, err = decodeB64(fields[5], MinKeySize, MaxKeySize); err != nil {
		return nil, fmt.Errorf("passwd: hash: %w", err)
	}
	return h, nil
}

func parseDecimal(s string, limit uint64) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%q is not a canonical decimal number", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a canonical decimal number", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > limit {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return n, nil
}

func decodeB64(s string, minLen, maxLen int) ([]byte, error) {
	if base64.RawStdEncoding.DecodedLen(len(s)) > maxLen {
		return nil, fmt.Errorf("longer than %d bytes", maxLen)
	}
	// Strict refuses non-zero padding bits, so each byte string has exactly one encoding.
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not canonical unpadded base64: %w", err)
	}
	// The decoder skips CR and LF even in strict mode; refuse them by re-encoding.
	if base64.RawStdEncoding.EncodeToString(b) != s {
		return nil, errors.New("not canonical unpadded base64")
	}
	if len(b) < minLen {
		return nil, fmt.Errorf("shorter than %d bytes", minLen)
	}
	return b, nil
}
