package pki

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// Signature is one authority's signature on a document's encoding.
type Signature struct {
	Authority keys.IdentityPublicKey
	Sig       [64]byte
}

// SignatureSize is the encoded size of a Signature: authority key then signature.
const SignatureSize = 32 + 64

// Marshal returns authority || sig.
func (s Signature) Marshal() []byte {
	return append(append(make([]byte, 0, SignatureSize), s.Authority[:]...), s.Sig[:]...)
}

// ParseSignature decodes authority || sig. It does not verify the signature.
func ParseSignature(b []byte) (Signature, error) {
	var s Signature
	if len(b) != SignatureSize {
		return s, malformed("signature of %d bytes, want %d", len(b), SignatureSize)
	}
	a, err := keys.NewIdentityPublicKey(b[:32])
	if err != nil {
		return s, fmt.Errorf("%w: authority key: %w", ErrMalformed, err)
	}
	s.Authority = a
	copy(s.Sig[:], b[32:])
	return s, nil
}

// Verify reports whether s is a valid signature by s.Authority on the document encoding doc.
func (s Signature) Verify(doc []byte) bool {
	return s.Authority.Verify(signedMessage(contextDocument, doc), s.Sig[:])
}

// SignDocument signs a document encoding (from Document.Marshal) with an authority key.
func SignDocument(doc []byte, k *keys.IdentityPrivateKey) Signature {
	s := Signature{Authority: k.Public()}
	copy(s.Sig[:], k.Sign(signedMessage(contextDocument, doc)))
	return s
}

// SignedDocument is a document encoding with its signatures (docs/spec/pki.md section 5).
type SignedDocument struct {
	// Raw is the document encoding the signatures cover.
	Raw      []byte
	Document *Document
	// Signatures are sorted by authority key, at most one per authority.
	Signatures []Signature
}

// AddSignature adds s unless the authority already has one; it does not verify s.
func (sd *SignedDocument) AddSignature(s Signature) error {
	i, found := slices.BinarySearchFunc(sd.Signatures, s.Authority, func(x Signature, a keys.IdentityPublicKey) int {
		return bytes.Compare(x.Authority[:], a[:])
	})
	if found {
		return nil
	}
	if len(sd.Signatures) >= MaxSignatures {
		return fmt.Errorf("signed document: already %d signatures, limit %d", len(sd.Signatures), MaxSignatures)
	}
	sd.Signatures = slices.Insert(sd.Signatures, i, s)
	return nil
}

// Marshal returns u32 len || document || u8 n || n * signature.
func (sd *SignedDocument) Marshal() []byte {
	b := make([]byte, 0, 4+len(sd.Raw)+1+len(sd.Signatures)*SignatureSize)
	b = appendU32(b, uint32(len(sd.Raw)))
	b = append(b, sd.Raw...)
	b = append(b, uint8(len(sd.Signatures)))
	for _, s := range sd.Signatures {
		b = append(b, s.Authority[:]...)
		b = append(b, s.Sig[:]...)
	}
	return b
}

// ParseSignedDocument decodes a signed document strictly, validating every key. It verifies no
// signature: see Verify.
func ParseSignedDocument(b []byte) (*SignedDocument, error) {
	sd, err := splitSignedDocument(b)
	if err != nil {
		return nil, err
	}
	if sd.Document, err = ParseDocument(sd.Raw); err != nil {
		return nil, fmt.Errorf("signed document: %w", err)
	}
	return sd, nil
}

// splitSignedDocument decodes the envelope (u32 len || document || signatures) without parsing
// the document.
func splitSignedDocument(b []byte) (*SignedDocument, error) {
	if len(b) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxDocumentSize)
	}
	r := &reader{b: b}
	n := r.u32("document length")
	raw := r.take(int(min(n, MaxDocumentSize+1)), "document")
	count := int(r.u8("signature count"))
	if r.err != nil {
		return nil, fmt.Errorf("signed document: %w", r.err)
	}
	if count > MaxSignatures {
		return nil, fmt.Errorf("signed document: %w", malformed("%d signatures, limit %d", count, MaxSignatures))
	}
	sd := &SignedDocument{Raw: raw, Signatures: make([]Signature, 0, count)}
	for i := 0; i < count; i++ {
		sb := r.take(SignatureSize, "signature")
		if r.err != nil {
			return nil, fmt.Errorf("signed document: %w", r.err)
		}
		s, err := ParseSignature(sb)
		if err != nil {
			return nil, fmt.Errorf("signed document: signature %d: %w", i, err)
		}
		if i > 0 && bytes.Compare(sd.Signatures[i-1].Authority[:], s.Authority[:]) >= 0 {
			return nil, fmt.Errorf("signed document: %w", malformed("signatures not sorted and unique at %s", s.Authority))
		}
		sd.Signatures = append(sd.Signatures, s)
	}
	if err := r.end("signed document"); err != nil {
		return nil, fmt.Errorf("signed document: %w", err)
	}
	return sd, nil
}

// Errors from Verify, for callers that act on the reason.
var (
	ErrTooLarge           = errors.New("document too large")
	ErrWrongEpoch         = errors.New("document is for the wrong epoch")
	ErrTooFewSignatures   = errors.New("too few valid authority signatures")
	ErrNoDocument         = errors.New("no document for the epoch")
	errBadThreshold       = errors.New("threshold must be between 1 and the number of authorities")
	errDuplicateAuthority = errors.New("authority key listed twice")
)

// GoodSignatures returns how many signatures in sd are valid and by distinct authorities in
// the given list.
func (sd *SignedDocument) GoodSignatures(authorities []keys.IdentityPublicKey) int {
	good := 0
	for _, s := range sd.Signatures {
		if slices.ContainsFunc(authorities, s.Authority.Equal) && s.Verify(sd.Raw) {
			good++
		}
	}
	return good
}

// CheckAuthorities checks a trust configuration: distinct keys and 1 <= threshold <= len.
func CheckAuthorities(authorities []keys.IdentityPublicKey, threshold int) error {
	if threshold < 1 || threshold > len(authorities) {
		return fmt.Errorf("threshold %d with %d authorities: %w", threshold, len(authorities), errBadThreshold)
	}
	for i, a := range authorities {
		if slices.ContainsFunc(authorities[:i], a.Equal) {
			return fmt.Errorf("%s: %w", a, errDuplicateAuthority)
		}
	}
	return nil
}

// Verify is the client's acceptance check (docs/spec/pki.md section 5): b is at most
// MaxDocumentSize, carries at least threshold valid signatures by distinct keys among
// authorities, parses, and is for epoch. Signatures are checked before the document is parsed,
// so unauthenticated bytes never reach the document parser here.
func Verify(b []byte, epoch Epoch, authorities []keys.IdentityPublicKey, threshold int) (*SignedDocument, error) {
	if err := CheckAuthorities(authorities, threshold); err != nil {
		return nil, err
	}
	sd, err := splitSignedDocument(b)
	if err != nil {
		return nil, err
	}
	if good := sd.GoodSignatures(authorities); good < threshold {
		return nil, fmt.Errorf("%w: %d of %d signatures valid from known authorities, threshold %d", ErrTooFewSignatures, good, len(sd.Signatures), threshold)
	}
	if sd.Document, err = parseDocument(sd.Raw, false); err != nil {
		return nil, fmt.Errorf("signed document: %w", err)
	}
	if sd.Document.Epoch != epoch {
		return nil, fmt.Errorf("%w: got epoch %d, want %d", ErrWrongEpoch, sd.Document.Epoch, epoch)
	}
	return sd, nil
}
