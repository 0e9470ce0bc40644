package pki

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Epoch numbers a period of the epoch length counted from Origin (docs/spec/pki.md section 1).
type Epoch uint64

// Origin is the fixed start of epoch 0.
var Origin = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// Bounds on the epoch length (docs/spec/pki.md section 1).
const (
	MinEpochLength = time.Second
	MaxEpochLength = 7 * 24 * time.Hour
)

// ErrBeforeOrigin is returned for times before Origin, which belong to no epoch.
var ErrBeforeOrigin = errors.New("time is before the epoch origin")

// Clock does epoch arithmetic for one epoch length.
type Clock struct {
	length time.Duration
}

// NewClock returns a Clock for epochs of the given length, which must be a whole number of
// milliseconds between MinEpochLength and MaxEpochLength.
func NewClock(length time.Duration) (Clock, error) {
	if err := validEpochLength(length); err != nil {
		return Clock{}, err
	}
	return Clock{length: length}, nil
}

func validEpochLength(length time.Duration) error {
	if length < MinEpochLength || length > MaxEpochLength || length%time.Millisecond != 0 {
		return fmt.Errorf("epoch length %v: must be a whole number of milliseconds in [%v, %v]", length, MinEpochLength, MaxEpochLength)
	}
	return nil
}

// Length returns the epoch length.
func (c Clock) Length() time.Duration { return c.length }

// At returns the epoch that contains t.
func (c Clock) At(t time.Time) (Epoch, error) {
	if t.Before(Origin) {
		return 0, fmt.Errorf("%v: %w", t, ErrBeforeOrigin)
	}
	// time.Sub saturates about 292 years after Origin; refuse rather than return a wrong epoch.
	d := t.Sub(Origin)
	if d == time.Duration(math.MaxInt64) {
		return 0, fmt.Errorf("%v: too far from the epoch origin", t)
	}
	return Epoch(d / c.length), nil
}

// Start returns the first instant of epoch e.
func (c Clock) Start(e Epoch) time.Time {
	return Origin.Add(time.Duration(e) * c.length)
}

// End returns the first instant after epoch e.
func (c Clock) End(e Epoch) time.Time { return c.Start(e + 1) }

// Now returns the current epoch and the time elapsed since its start.
func (c Clock) Now() (Epoch, time.Duration, error) {
	now := time.Now()
	e, err := c.At(now)
	if err != nil {
		return 0, 0, err
	}
	return e, now.Sub(c.Start(e)), nil
}
