package dp

import (
	"errors"
	"sync"
	"testing"
)

func TestLedger(t *testing.T) {
	l, err := NewLedger(EpsilonUnit, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Charge(300000); err != nil {
		t.Fatal(err)
	}
	if err := l.Charge(700000); err != nil {
		t.Fatalf("charge to exactly the budget: %v", err)
	}
	if err := l.Charge(1); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("over budget: %v", err)
	}
	if l.Spent() != EpsilonUnit || l.Remaining() != 0 || l.Budget() != EpsilonUnit {
		t.Errorf("spent %s remaining %s", l.Spent(), l.Remaining())
	}
}

func TestLedgerRefusalSpendsNothing(t *testing.T) {
	l, _ := NewLedger(EpsilonUnit, 600000)
	if err := l.Charge(500000); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("over budget: %v", err)
	}
	if l.Spent() != 600000 {
		t.Errorf("refused charge spent: %s", l.Spent())
	}
	if err := l.Charge(400000); err != nil {
		t.Errorf("remaining budget refused: %v", err)
	}
}

func TestLedgerInvalid(t *testing.T) {
	if _, err := NewLedger(0, 0); err == nil {
		t.Error("zero budget")
	}
	if _, err := NewLedger(MaxEpsilon+1, 0); err == nil {
		t.Error("budget over the maximum")
	}
	if _, err := NewLedger(EpsilonUnit, EpsilonUnit+1); err == nil {
		t.Error("spent over budget")
	}
	l, _ := NewLedger(EpsilonUnit, 0)
	if err := l.Charge(0); !errors.Is(err, ErrEpsilon) {
		t.Errorf("zero charge: %v", err)
	}
}

// Concurrent charges never overspend: exactly budget/ε of them succeed.
func TestLedgerConcurrent(t *testing.T) {
	l, _ := NewLedger(10*EpsilonUnit, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.Charge(EpsilonUnit/2) == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 20 || l.Remaining() != 0 {
		t.Errorf("%d charges succeeded, %s remaining", ok, l.Remaining())
	}
}
