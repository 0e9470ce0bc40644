package imapd

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// The login cache makes a right password fast without storing anything weaker than argon2id on
// disk (issue 16: ten connections of one mail program waited 7.3 s on average behind two hash
// workers). After a password has been checked in full, the server keeps, in memory only, an
// HMAC-SHA-256 of the user name, the stored hash and the password under a key drawn at start;
// a later login of that user whose HMAC matches needs no argon2id. Dovecot keeps such a cache
// too (auth_cache).
//
// What it does not change: a password that does not match goes the full way (the failure limits,
// the slots and a full hash, auth.go), and every login, matching or not, first passes the
// failure limits, so a warm cache does not let guesses past them. An entry lives
// DefaultAuthCacheTTL and is void once the stored hash changes (a new password). The price: an
// attacker who can read the server's memory can test guesses against an entry at HMAC speed
// instead of argon2id speed for as long as it lives, as with Dovecot's cache.

// DefaultAuthCacheTTL is how long a checked password stays in the login cache.
const DefaultAuthCacheTTL = 15 * time.Minute

// maxAuthCacheEntries bounds the cache: one entry per user, dropped when it expires or when the
// cache is full (then the oldest go first).
const maxAuthCacheEntries = 10000

type authCache struct {
	key [32]byte
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]authEntry
}

type authEntry struct {
	mac     [32]byte
	expires time.Time
}

// newAuthCache returns a cache whose entries live ttl, or nil (no cache) if ttl < 0.
func newAuthCache(ttl time.Duration) *authCache {
	if ttl < 0 {
		return nil
	}
	c := &authCache{ttl: ttl, now: time.Now, entries: make(map[string]authEntry)}
	rand.Read(c.key[:]) // crypto/rand.Read does not fail (it panics if the system's source does)
	return c
}

func (c *authCache) mac(user, phc, password string) [32]byte {
	h := hmac.New(sha256.New, c.key[:])
	for _, f := range []string{user, phc, password} {
		// Length-prefixed, so that no two different triples give the same input.
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(f))))
		h.Write([]byte(f))
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// check reports whether password was checked in full for user, with the stored hash phc, within
// the entry's lifetime.
func (c *authCache) check(user, phc, password string) bool {
	if c == nil || phc == "" {
		return false
	}
	m := c.mac(user, phc, password)
	c.mu.Lock()
	e, ok := c.entries[user]
	c.mu.Unlock()
	return ok && c.now().Before(e.expires) && hmac.Equal(e.mac[:], m[:])
}

// put records that password is right for user with the stored hash phc.
func (c *authCache) put(user, phc, password string) {
	if c == nil || phc == "" {
		return
	}
	e := authEntry{mac: c.mac(user, phc, password), expires: c.now().Add(c.ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[user]; !ok && len(c.entries) >= maxAuthCacheEntries {
		c.pruneLocked()
	}
	c.entries[user] = e
}

// pruneLocked drops the expired entries, and the one expiring first if none had.
func (c *authCache) pruneLocked() {
	now := c.now()
	var oldest string
	for u, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, u)
		} else if oldest == "" || e.expires.Before(c.entries[oldest].expires) {
			oldest = u
		}
	}
	if len(c.entries) >= maxAuthCacheEntries {
		delete(c.entries, oldest)
	}
}
