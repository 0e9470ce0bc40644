package pki

import (
	"errors"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	c, err := NewClock(20 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Time
		want Epoch
	}{
		{Origin, 0},
		{Origin.Add(20*time.Minute - time.Nanosecond), 0},
		{Origin.Add(20 * time.Minute), 1},
		{Origin.Add(24 * time.Hour), 72},
	} {
		got, err := c.At(tc.at)
		if err != nil || got != tc.want {
			t.Errorf("At(%v) = %d, %v; want %d", tc.at, got, err, tc.want)
		}
		if s := c.Start(got); s.After(tc.at) || !c.End(got).After(tc.at) {
			t.Errorf("epoch %d [%v, %v) does not contain %v", got, s, c.End(got), tc.at)
		}
	}
	if _, err := c.At(Origin.Add(-time.Second)); !errors.Is(err, ErrBeforeOrigin) {
		t.Errorf("before origin: %v, want ErrBeforeOrigin", err)
	}
	if _, err := c.At(Origin.AddDate(300, 0, 0)); err == nil {
		t.Error("300 years after origin: no error")
	}
	e, since, err := c.Now()
	if err != nil || since < 0 || since >= c.Length() || time.Until(c.Start(e).Add(since)) > time.Second {
		t.Errorf("Now() = %d, %v, %v", e, since, err)
	}
	for _, bad := range []time.Duration{0, time.Millisecond, 999 * time.Millisecond, time.Second + time.Microsecond, 8 * 24 * time.Hour} {
		if _, err := NewClock(bad); err == nil {
			t.Errorf("NewClock(%v): no error", bad)
		}
	}
}
