package pki

import (
	"bytes"
	"fmt"
	"math"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// Parameters are the network-wide settings every document carries (docs/spec/pki.md section 3).
type Parameters struct {
	// Geometry is the Sphinx packet geometry; its hash is encoded next to it.
	Geometry sphinx.Geometry
	// LambdaP is the client send rate (real or drop packets) per second.
	LambdaP float64
	// LambdaL is the client loop cover rate per second.
	LambdaL float64
	// LambdaD is the client extra drop cover rate per second.
	LambdaD float64
	// LambdaM is the mix loop cover rate per second.
	LambdaM float64
	// MeanDelay is the mean per-hop delay, 1/mu; a whole number of milliseconds.
	MeanDelay time.Duration
	// MaxDelay is the largest per-hop delay a sender picks; a whole number of milliseconds.
	MaxDelay time.Duration
	// EpochLength is the epoch length (section 1).
	EpochLength time.Duration
}

// DefaultParameters returns the defaults of docs/spec/pki.md section 3. It is the only place they
// are written down in code.
func DefaultParameters() Parameters {
	return Parameters{
		Geometry:    sphinx.DefaultGeometry(),
		LambdaP:     2,
		LambdaL:     0.5,
		LambdaD:     0.5,
		LambdaM:     0.5,
		MeanDelay:   200 * time.Millisecond,
		MaxDelay:    3 * time.Second,
		EpochLength: 20 * time.Minute,
	}
}

const (
	maxRate     = 1000
	maxDelayCap = 600 * time.Second
	paramsSize  = 1 + 4 + 32 + 4*8 + 3*4
)

// Mu returns the per-hop delay rate in 1/s (the inverse of MeanDelay).
func (p Parameters) Mu() float64 { return 1 / p.MeanDelay.Seconds() }

// Validate checks every parameter against its range.
func (p Parameters) Validate() error {
	if err := p.Geometry.Validate(); err != nil {
		return fmt.Errorf("parameters: geometry: %w", err)
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"lambda_p", p.LambdaP}, {"lambda_l", p.LambdaL}, {"lambda_d", p.LambdaD}, {"lambda_m", p.LambdaM}} {
		if math.IsNaN(r.v) || r.v <= 0 || r.v > maxRate {
			return fmt.Errorf("parameters: %s = %v: must be in (0, %d]", r.name, r.v, maxRate)
		}
	}
	if p.MeanDelay < time.Millisecond || p.MeanDelay%time.Millisecond != 0 {
		return fmt.Errorf("parameters: mean delay %v: must be a whole number of milliseconds, at least 1 ms", p.MeanDelay)
	}
	if p.MaxDelay < p.MeanDelay || p.MaxDelay > maxDelayCap || p.MaxDelay%time.Millisecond != 0 {
		return fmt.Errorf("parameters: max delay %v: must be a whole number of milliseconds between the mean delay %v and %v", p.MaxDelay, p.MeanDelay, maxDelayCap)
	}
	if err := validEpochLength(p.EpochLength); err != nil {
		return fmt.Errorf("parameters: %w", err)
	}
	return nil
}

// Equal reports whether p and o encode to the same bytes.
func (p Parameters) Equal(o Parameters) bool {
	return bytes.Equal(p.appendTo(nil), o.appendTo(nil))
}

// The encoding has u8 hops and u32 payload size; Geometry.Validate keeps both in range.
// These fail to compile if the limits outgrow the fields.
const (
	_ = uint8(sphinx.MaxHops)
	_ = uint32(sphinx.MaxPayloadSize)
)

// appendTo appends the params encoding. p must be valid.
func (p Parameters) appendTo(b []byte) []byte {
	h := p.Geometry.Hash()
	b = append(b, uint8(p.Geometry.Hops))
	b = appendU32(b, uint32(p.Geometry.PayloadSize))
	b = append(b, h[:]...)
	b = appendF64(b, p.LambdaP)
	b = appendF64(b, p.LambdaL)
	b = appendF64(b, p.LambdaD)
	b = appendF64(b, p.LambdaM)
	b = appendU32(b, uint32(p.MeanDelay/time.Millisecond))
	b = appendU32(b, uint32(p.MaxDelay/time.Millisecond))
	return appendU32(b, uint32(p.EpochLength/time.Millisecond))
}

func readParameters(r *reader) (Parameters, error) {
	var p Parameters
	p.Geometry.Hops = int(r.u8("hops"))
	p.Geometry.PayloadSize = int(r.u32("payload size"))
	h := r.array32("geometry hash")
	p.LambdaP = r.f64("lambda_p")
	p.LambdaL = r.f64("lambda_l")
	p.LambdaD = r.f64("lambda_d")
	p.LambdaM = r.f64("lambda_m")
	p.MeanDelay = time.Duration(r.u32("mean delay")) * time.Millisecond
	p.MaxDelay = time.Duration(r.u32("max delay")) * time.Millisecond
	p.EpochLength = time.Duration(r.u32("epoch length")) * time.Millisecond
	if r.err != nil {
		return p, r.err
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if p.Geometry.Hash() != h {
		return p, malformed("geometry hash does not match %d hops, payload %d", p.Geometry.Hops, p.Geometry.PayloadSize)
	}
	return p, nil
}
