package pki

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// Vote is one authority's view of the nodes for an epoch (docs/spec/pki.md section 6).
type Vote struct {
	Epoch      Epoch
	Authority  keys.IdentityPublicKey
	Parameters Parameters
	// Descriptors are sorted by identity, one per node, each with a key for Epoch.
	Descriptors []*Descriptor
	Signature   [64]byte
}

// Sign sorts the descriptors, checks the vote and signs it with the authority key.
func (v *Vote) Sign(k *keys.IdentityPrivateKey) ([]byte, error) {
	v.Authority = k.Public()
	slices.SortFunc(v.Descriptors, func(a, b *Descriptor) int { return bytes.Compare(a.Identity[:], b.Identity[:]) })
	body, err := v.body()
	if err != nil {
		return nil, err
	}
	copy(v.Signature[:], k.Sign(signedMessage(contextVote, body)))
	return append(body, v.Signature[:]...), nil
}

// Marshal returns the canonical encoding of a signed vote.
func (v *Vote) Marshal() ([]byte, error) {
	body, err := v.body()
	if err != nil {
		return nil, err
	}
	return append(body, v.Signature[:]...), nil
}

func (v *Vote) body() ([]byte, error) {
	if err := v.Parameters.Validate(); err != nil {
		return nil, fmt.Errorf("vote: %w", err)
	}
	if len(v.Descriptors) > MaxNodes {
		return nil, fmt.Errorf("vote: %d descriptors, limit %d", len(v.Descriptors), MaxNodes)
	}
	b := make([]byte, 0, 128+len(v.Descriptors)*400)
	b = append(b, Version)
	b = appendU64(b, uint64(v.Epoch))
	b = append(b, v.Authority[:]...)
	b = v.Parameters.appendTo(b)
	b = appendU32(b, uint32(len(v.Descriptors)))
	for i, d := range v.Descriptors {
		if i > 0 && bytes.Compare(v.Descriptors[i-1].Identity[:], d.Identity[:]) >= 0 {
			return nil, fmt.Errorf("vote: descriptors not sorted and unique at %s", d.Identity)
		}
		if _, ok := d.SphinxKey(v.Epoch); !ok {
			return nil, fmt.Errorf("vote: descriptor of %s has no sphinx key for epoch %d", d.Identity, v.Epoch)
		}
		db, err := d.Marshal()
		if err != nil {
			return nil, fmt.Errorf("vote: %w", err)
		}
		b = appendU16(b, uint16(len(db)))
		b = append(b, db...)
	}
	if len(b)+64 > MaxDocumentSize {
		return nil, fmt.Errorf("vote: %d bytes, limit %d", len(b)+64, MaxDocumentSize)
	}
	return b, nil
}

// ParseVote decodes a vote strictly and verifies its signature and every descriptor's.
func ParseVote(b []byte) (*Vote, error) {
	if len(b) > MaxDocumentSize {
		return nil, fmt.Errorf("vote: %w: %d bytes, limit %d", ErrTooLarge, len(b), MaxDocumentSize)
	}
	r := &reader{b: b}
	v := &Vote{}
	if ver := r.u8("version"); r.err == nil && ver != Version {
		return nil, fmt.Errorf("vote: %w", malformed("unknown version %d", ver))
	}
	v.Epoch = Epoch(r.u64("epoch"))
	a := r.array32("authority")
	if r.err != nil {
		return nil, fmt.Errorf("vote: %w", r.err)
	}
	var err error
	if v.Authority, err = keys.NewIdentityPublicKey(a[:]); err != nil {
		return nil, fmt.Errorf("vote: %w: authority: %w", ErrMalformed, err)
	}
	if v.Parameters, err = readParameters(r); err != nil {
		return nil, fmt.Errorf("vote: %w", err)
	}
	count := r.u32("descriptor count")
	if r.err == nil && count > MaxNodes {
		return nil, fmt.Errorf("vote: %w", malformed("%d descriptors, limit %d", count, MaxNodes))
	}
	v.Descriptors = make([]*Descriptor, 0, count)
	for i := uint32(0); i < count; i++ {
		n := r.u16("descriptor length")
		db := r.take(int(n), "descriptor")
		if r.err != nil {
			return nil, fmt.Errorf("vote: %w", r.err)
		}
		d, err := ParseDescriptor(db)
		if err != nil {
			return nil, fmt.Errorf("vote: descriptor %d: %w", i, err)
		}
		if i > 0 && bytes.Compare(v.Descriptors[i-1].Identity[:], d.Identity[:]) >= 0 {
			return nil, fmt.Errorf("vote: %w", malformed("descriptors not sorted and unique at %s", d.Identity))
		}
		if _, ok := d.SphinxKey(v.Epoch); !ok {
			return nil, fmt.Errorf("vote: %w", malformed("descriptor of %s has no sphinx key for epoch %d", d.Identity, v.Epoch))
		}
		v.Descriptors = append(v.Descriptors, d)
	}
	body := b[:len(b)-len(r.b)]
	copy(v.Signature[:], r.take(64, "signature"))
	if err := r.end("vote"); err != nil {
		return nil, fmt.Errorf("vote: %w", err)
	}
	if !v.Authority.Verify(signedMessage(contextVote, body), v.Signature[:]) {
		return nil, fmt.Errorf("vote: %w: bad signature by %s", ErrMalformed, v.Authority)
	}
	return v, nil
}

// A descriptor length must fit the u16 prefix in a vote; this fails to compile otherwise.
const _ = uint16(MaxDescriptorSize)
