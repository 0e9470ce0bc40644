package node

import (
	"time"
)

// tokenBucket limits one user's packet rate.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// allow takes a token from the user's bucket (rate user_rate, size user_burst); false means the
// packet must be dropped. A flood from one user costs the others nothing but the unwrap-free
// check here.
func (n *Node) allow(user string) bool {
	n.limitsMu.Lock()
	defer n.limitsMu.Unlock()
	now := time.Now()
	b := n.limits[user]
	burst := float64(n.cfg.Provider.UserBurst)
	if b == nil {
		b = &tokenBucket{tokens: burst, last: now}
		n.limits[user] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*n.cfg.Provider.UserRate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
