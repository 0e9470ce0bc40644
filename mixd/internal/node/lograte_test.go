package node

import (
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	l := newLogLimiter(time.Second)
	t0 := time.Unix(1000, 0)
	if ok, held := l.allow("vote", t0); !ok || held != 0 {
		t.Fatalf("first line: %v %d", ok, held)
	}
	for i := 1; i <= 500; i++ {
		if ok, _ := l.allow("vote", t0.Add(time.Duration(i)*time.Millisecond)); ok {
			t.Fatalf("line %d within the interval let through", i)
		}
	}
	if ok, _ := l.allow("mailbox", t0.Add(time.Millisecond)); !ok {
		t.Fatal("another kind held back by the first")
	}
	if ok, held := l.allow("vote", t0.Add(time.Second)); !ok || held != 500 {
		t.Fatalf("after the interval: %v, %d held back, want 500", ok, held)
	}
}
