package imapd

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// Logins of one user with one password at the same moment share one check (issue 16: a mail
// program opening ten connections with an empty login cache had about half of them refused by
// the per-user slots, auth.go). The first such login leads: it passes the failure limits and the
// slots as any login does and checks the password in full. A login that presents the same user,
// stored hash and password while the leader's check is in flight waits for it instead of taking
// a failure slot or a place in the queues.
//
// What it does not change: only a success is shared. A waiter whose leader failed, was refused
// or broke goes the full way itself afterwards (failure limits, slots, full hash), so a wrong
// password costs the same hash and failure slot as without the flight, however often it is
// repeated. A waiter is refused at once if its user or address is locked out. A flight is found
// by an HMAC of user, stored hash and password under a key drawn at start, compared in constant
// time: the password is never a map key, and a success reaches only logins that presented the
// same credential against the same stored hash. At most MaxSessionsPerUser-1 logins wait for one
// flight (more could not all get a session); beyond that a login goes the full way at once.

type authFlights struct {
	key        [32]byte
	maxWaiters int

	mu     sync.Mutex
	byUser map[string][]*authFlight // the flights in progress; an entry goes with its last flight
}

type authFlight struct {
	mac     [32]byte
	waiters int
	done    chan struct{} // closed once ok is set
	ok      bool
}

func newAuthFlights(maxWaiters int) *authFlights {
	f := &authFlights{maxWaiters: maxWaiters, byUser: make(map[string][]*authFlight)}
	rand.Read(f.key[:]) // crypto/rand.Read does not fail (it panics if the system's source does)
	return f
}

func (fs *authFlights) mac(user, phc, password string) [32]byte {
	h := hmac.New(sha256.New, fs.key[:])
	for _, s := range []string{user, phc, password} {
		// Length-prefixed, so that no two different triples give the same input.
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(s))))
		h.Write([]byte(s))
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// join finds the flight of this credential. If there is one with room, it returns it with
// lead false: the caller waits for it. If there is none, it starts one and returns it with lead
// true: the caller checks the password and must call finish. If the flight is full it returns
// nil: the caller checks on its own, outside any flight.
func (fs *authFlights) join(user, phc, password string) (f *authFlight, lead bool) {
	m := fs.mac(user, phc, password)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, f := range fs.byUser[user] {
		if hmac.Equal(f.mac[:], m[:]) {
			if f.waiters >= fs.maxWaiters {
				return nil, false
			}
			f.waiters++
			return f, false
		}
	}
	f = &authFlight{mac: m, done: make(chan struct{})}
	fs.byUser[user] = append(fs.byUser[user], f)
	return f, true
}

// finish ends the leader's flight with its outcome and wakes its waiters.
func (fs *authFlights) finish(user string, f *authFlight, ok bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	list := fs.byUser[user]
	for i, g := range list {
		if g == f {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(fs.byUser, user)
	} else {
		fs.byUser[user] = list
	}
	f.ok = ok
	close(f.done)
}

// wait returns the leader's outcome: true only if it checked this same credential and it was
// right.
func (f *authFlight) wait() bool {
	<-f.done
	return f.ok
}
