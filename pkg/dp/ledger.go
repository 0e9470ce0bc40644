package dp

import (
	"errors"
	"fmt"
	"sync"
)

// ErrBudgetExceeded is returned by Ledger.Charge for a release that would spend more than the
// budget.
var ErrBudgetExceeded = errors.New("dp: privacy budget exceeded")

// Ledger is one survey's privacy budget: the ε of every release is added to what was spent
// (sequential composition of pure ε-DP), and a release that would take the total over the
// budget is refused. It is safe for concurrent use. Persisting it is the caller's job: the
// survey store records every charge in the same transaction as the release.
type Ledger struct {
	mu            sync.Mutex
	budget, spent Epsilon
}

// NewLedger returns a ledger with the given budget, of which spent is already used.
func NewLedger(budget, spent Epsilon) (*Ledger, error) {
	if budget == 0 || budget > MaxEpsilon {
		return nil, fmt.Errorf("%w: budget %s: want more than 0 and at most %s", ErrEpsilon, budget, MaxEpsilon)
	}
	if spent > budget {
		return nil, fmt.Errorf("dp: ledger: spent %s is over the budget %s", spent, budget)
	}
	return &Ledger{budget: budget, spent: spent}, nil
}

// Charge spends eps, or refuses with ErrBudgetExceeded and spends nothing.
func (l *Ledger) Charge(eps Epsilon) error {
	if eps == 0 || eps > MaxEpsilon {
		return fmt.Errorf("%w: release ε %s: want more than 0 and at most %s", ErrEpsilon, eps, MaxEpsilon)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if eps > l.budget-l.spent {
		return fmt.Errorf("%w: a release of ε = %s with %s of %s spent (%s remaining)", ErrBudgetExceeded, eps, l.spent, l.budget, l.budget-l.spent)
	}
	l.spent += eps
	return nil
}

// Budget returns the total budget.
func (l *Ledger) Budget() Epsilon { return l.budget }

// Spent returns what releases have used.
func (l *Ledger) Spent() Epsilon {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spent
}

// Remaining returns Budget - Spent.
func (l *Ledger) Remaining() Epsilon {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.budget - l.spent
}
