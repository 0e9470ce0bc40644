package entropy

import (
	"fmt"
	"time"
)

// The recording checks Tracker and Backward share: events in time order, the senders (users and
// nodes) numbered as they appear up to a bound, and a bounded set of live packets.

// clock refuses an event earlier than the one before it.
type clock struct {
	started bool
	last    time.Duration
}

func (c *clock) next(at time.Duration) error {
	if c.started && at < c.last {
		return fmt.Errorf("%w: %v after %v", ErrOrder, at, c.last)
	}
	c.started, c.last = true, at
	return nil
}

// senders numbers the users and nodes that appear in the events, at most max of them. A name
// seen once as a user stays a user.
type senders struct {
	names  []string
	isUser []bool
	index  map[string]int32
	max    int
}

func newSenders(max int) senders { return senders{index: map[string]int32{}, max: max} }

// number returns name's number and whether it was new.
func (s *senders) number(name string, user bool) (int32, bool, error) {
	if i, ok := s.index[name]; ok {
		if user {
			s.isUser[i] = true
		}
		return i, false, nil
	}
	if len(s.names) >= s.max {
		return 0, false, fmt.Errorf("%w: %d senders", ErrLimit, s.max)
	}
	i := int32(len(s.names))
	s.names = append(s.names, name)
	s.isUser = append(s.isUser, user)
	s.index[name] = i
	return i, true, nil
}

// addLive records a packet that entered the network: its id must be new and non-zero, and at
// most max packets may be alive at once.
func addLive[T any](live map[PacketID]T, id PacketID, v T, max int) error {
	if id == 0 {
		return fmt.Errorf("%w: id 0", ErrPacket)
	}
	if _, ok := live[id]; ok {
		return fmt.Errorf("%w: %d", ErrDuplicate, id)
	}
	if len(live) >= max {
		return fmt.Errorf("%w: %d packets alive", ErrLimit, max)
	}
	live[id] = v
	return nil
}

// withDefaults fills the bounds and the pruning threshold left at zero.
func (cfg Config) withDefaults() Config {
	if cfg.Prune == 0 {
		cfg.Prune = 1e-9
	}
	if cfg.MaxSenders == 0 {
		cfg.MaxSenders = DefaultMaxSenders
	}
	if cfg.MaxPackets == 0 {
		cfg.MaxPackets = DefaultMaxPackets
	}
	return cfg
}
