package keys

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
)

// PEM block types, one per role and kind, so that a file can never be loaded
// as a key of another role.
const (
	IdentityPrivateKeyPEMType = "PANORAMIX IDENTITY PRIVATE KEY"
	IdentityPublicKeyPEMType  = "PANORAMIX IDENTITY PUBLIC KEY"
	LinkPrivateKeyPEMType     = "PANORAMIX LINK PRIVATE KEY"
	LinkPublicKeyPEMType      = "PANORAMIX LINK PUBLIC KEY"
	SphinxPrivateKeyPEMType   = "PANORAMIX SPHINX PRIVATE KEY"
	SphinxPublicKeyPEMType    = "PANORAMIX SPHINX PUBLIC KEY"
)

// MaxFileSize bounds key files and PEM input. A key file written by this
// package is under 200 bytes; the limit only has to stop a wrong path (a log,
// a device) from being read into memory.
const MaxFileSize = 64 << 10

// ErrMalformedFile is wrapped by errors about the structure of key file
// content: not PEM, wrong block type, headers, leading or trailing data,
// non-canonical encoding, over MaxFileSize.
var ErrMalformedFile = errors.New("malformed key file")

// encodePEM returns the canonical PEM form of one key. For private keys the
// caller wipes the result when done.
func encodePEM(blockType string, key *[KeySize]byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: key[:]})
}

// maxTypeInError bounds how much of an unexpected PEM type an error repeats.
const maxTypeInError = 64

// decodePEM parses data as exactly one canonical PEM block of wantType
// holding KeySize bytes, and returns those bytes. Only the form encodePEM
// writes is accepted, so a successful decode re-encodes to identical bytes.
// The returned array holds secret bytes for private key types; the caller
// wipes it. Errors do not name a path; file loaders add it.
func decodePEM(data []byte, wantType string) (key [KeySize]byte, err error) {
	if len(data) > MaxFileSize {
		return key, fmt.Errorf("%d bytes exceeds the limit of %d: %w", len(data), MaxFileSize, ErrMalformedFile)
	}
	if !bytes.HasPrefix(data, []byte("-----BEGIN ")) {
		if bytes.Contains(data, []byte("-----BEGIN ")) {
			return key, fmt.Errorf("unexpected data before the PEM block (want only a %q block): %w", wantType, ErrMalformedFile)
		}
		return key, fmt.Errorf("not a PEM file (want a %q block): %w", wantType, ErrMalformedFile)
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return key, fmt.Errorf("invalid PEM block (want a %q block): %w", wantType, ErrMalformedFile)
	}
	defer wipe(block.Bytes)
	if block.Type != wantType {
		found := block.Type
		if len(found) > maxTypeInError {
			found = found[:maxTypeInError] + "..."
		}
		return key, fmt.Errorf("PEM block type is %q, want %q: %w", found, wantType, ErrMalformedFile)
	}
	if len(block.Headers) != 0 {
		return key, fmt.Errorf("PEM headers are not allowed in a %q block: %w", wantType, ErrMalformedFile)
	}
	if len(rest) != 0 {
		return key, fmt.Errorf("%d bytes of trailing data after the PEM block: %w", len(rest), ErrMalformedFile)
	}
	if len(block.Bytes) != KeySize {
		return key, fmt.Errorf("%q block holds %d bytes, want %d: %w", wantType, len(block.Bytes), KeySize, ErrMalformedFile)
	}
	copy(key[:], block.Bytes)
	// pem.Decode tolerates variations (line lengths, whitespace, CRLF) that
	// encodePEM never writes; refusing them keeps one file form per key.
	again := encodePEM(wantType, &key)
	defer wipe(again)
	if !bytes.Equal(again, data) {
		wipe(key[:])
		return key, fmt.Errorf("non-canonical PEM encoding (line breaks or whitespace differ from what panoramix writes): %w", ErrMalformedFile)
	}
	return key, nil
}

// MarshalIdentityPrivateKeyPEM returns the PEM file form of k. The result
// holds the secret; wipe it when done. It returns ErrWiped for a wiped key.
func MarshalIdentityPrivateKeyPEM(k *IdentityPrivateKey) ([]byte, error) {
	if k == nil || !k.k.ok {
		return nil, ErrWiped
	}
	return encodePEM(IdentityPrivateKeyPEMType, k.k.seed()), nil
}

// ParseIdentityPrivateKeyPEM parses the form MarshalIdentityPrivateKeyPEM
// writes.
func ParseIdentityPrivateKeyPEM(data []byte) (*IdentityPrivateKey, error) {
	seed, err := decodePEM(data, IdentityPrivateKeyPEMType)
	defer wipe(seed[:])
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return NewIdentityPrivateKey(seed[:])
}

// MarshalLinkPrivateKeyPEM returns the PEM file form of k. The result holds
// the secret; wipe it when done. It returns ErrWiped for a wiped key.
func MarshalLinkPrivateKeyPEM(k *LinkPrivateKey) ([]byte, error) {
	if k == nil || !k.k.ok {
		return nil, ErrWiped
	}
	return encodePEM(LinkPrivateKeyPEMType, k.k.seed()), nil
}

// ParseLinkPrivateKeyPEM parses the form MarshalLinkPrivateKeyPEM writes.
func ParseLinkPrivateKeyPEM(data []byte) (*LinkPrivateKey, error) {
	seed, err := decodePEM(data, LinkPrivateKeyPEMType)
	defer wipe(seed[:])
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return NewLinkPrivateKey(seed[:])
}

// MarshalSphinxPrivateKeyPEM returns the PEM file form of k. The result holds
// the secret; wipe it when done. It returns ErrWiped for a wiped key.
func MarshalSphinxPrivateKeyPEM(k *SphinxPrivateKey) ([]byte, error) {
	if k == nil || !k.ok {
		return nil, ErrWiped
	}
	return encodePEM(SphinxPrivateKeyPEMType, &k.scalar), nil
}

// ParseSphinxPrivateKeyPEM parses the form MarshalSphinxPrivateKeyPEM writes.
func ParseSphinxPrivateKeyPEM(data []byte) (*SphinxPrivateKey, error) {
	scalar, err := decodePEM(data, SphinxPrivateKeyPEMType)
	defer wipe(scalar[:])
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return NewSphinxPrivateKey(scalar[:])
}

// MarshalIdentityPublicKeyPEM returns the PEM file form of k.
func MarshalIdentityPublicKeyPEM(k IdentityPublicKey) []byte {
	return encodePEM(IdentityPublicKeyPEMType, (*[KeySize]byte)(&k))
}

// ParseIdentityPublicKeyPEM parses the form MarshalIdentityPublicKeyPEM
// writes, with the key checks of NewIdentityPublicKey.
func ParseIdentityPublicKeyPEM(data []byte) (IdentityPublicKey, error) {
	b, err := decodePEM(data, IdentityPublicKeyPEMType)
	if err != nil {
		return IdentityPublicKey{}, fmt.Errorf("keys: %w", err)
	}
	return NewIdentityPublicKey(b[:])
}

// MarshalLinkPublicKeyPEM returns the PEM file form of k.
func MarshalLinkPublicKeyPEM(k LinkPublicKey) []byte {
	return encodePEM(LinkPublicKeyPEMType, (*[KeySize]byte)(&k))
}

// ParseLinkPublicKeyPEM parses the form MarshalLinkPublicKeyPEM writes, with
// the key checks of NewLinkPublicKey.
func ParseLinkPublicKeyPEM(data []byte) (LinkPublicKey, error) {
	b, err := decodePEM(data, LinkPublicKeyPEMType)
	if err != nil {
		return LinkPublicKey{}, fmt.Errorf("keys: %w", err)
	}
	return NewLinkPublicKey(b[:])
}

// MarshalSphinxPublicKeyPEM returns the PEM file form of k.
func MarshalSphinxPublicKeyPEM(k SphinxPublicKey) []byte {
	return encodePEM(SphinxPublicKeyPEMType, (*[KeySize]byte)(&k))
}

// ParseSphinxPublicKeyPEM parses the form MarshalSphinxPublicKeyPEM writes,
// with the key checks of NewSphinxPublicKey.
func ParseSphinxPublicKeyPEM(data []byte) (SphinxPublicKey, error) {
	b, err := decodePEM(data, SphinxPublicKeyPEMType)
	if err != nil {
		return SphinxPublicKey{}, fmt.Errorf("keys: %w", err)
	}
	return NewSphinxPublicKey(b[:])
}
