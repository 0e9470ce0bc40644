package survey

import (
	"fmt"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// SignatureContext prefixes the signed bytes (docs/spec/survey.md section 3), so that a
// collector's signature over a definition is not valid for anything else its key signs.
const SignatureContext = "panoramix survey definition v1\x00"

// SignatureSize is the size of the Ed25519 signature that ends a signed survey.
const SignatureSize = 64

// Signed is a definition with the collector's signature.
type Signed struct {
	Definition *Definition
	// Raw is the definition's canonical encoding (what is hashed and signed).
	Raw       []byte
	Signature []byte
}

// ID returns the survey id.
func (s *Signed) ID() ID { return hashRaw(s.Raw) }

// Marshal returns the signed survey: Raw || Signature.
func (s *Signed) Marshal() []byte {
	return append(append(make([]byte, 0, len(s.Raw)+SignatureSize), s.Raw...), s.Signature...)
}

// Sign encodes d and signs it with the collector key k, whose public key must be
// d.Collector.
func Sign(d *Definition, k *keys.IdentityPrivateKey) (*Signed, error) {
	if !k.Public().Equal(d.Collector) {
		return nil, fmt.Errorf("survey: signing key %s is not the definition's collector %s", k.Public(), d.Collector)
	}
	raw, err := d.Marshal()
	if err != nil {
		return nil, err
	}
	sig := k.Sign(append([]byte(SignatureContext), raw...))
	return &Signed{Definition: d, Raw: raw, Signature: sig}, nil
}

// ParseSigned parses a signed survey strictly and verifies its signature with the
// definition's collector key. The caller must still check that the collector is one it
// trusts (Signed.Definition.Collector).
func ParseSigned(b []byte) (*Signed, error) {
	if len(b) < SignatureSize {
		return nil, fmt.Errorf("%w: signed survey of %d bytes", ErrMalformed, len(b))
	}
	raw, sig := b[:len(b)-SignatureSize], b[len(b)-SignatureSize:]
	d, err := ParseDefinition(raw)
	if err != nil {
		return nil, err
	}
	if !d.Collector.Verify(append([]byte(SignatureContext), raw...), sig) {
		return nil, fmt.Errorf("%w: bad signature by collector %s", ErrMalformed, d.Collector)
	}
	return &Signed{Definition: d, Raw: append([]byte(nil), raw...), Signature: append([]byte(nil), sig...)}, nil
}
