package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/replay"
)

// KeysAhead is how many epochs after the current one a node holds Sphinx keys for, so that the
// directory can put the next epoch's key in the document in time (docs/spec/pki.md section 8).
const KeysAhead = 2

// epochKey is the Sphinx key of one epoch with its replay filter.
type epochKey struct {
	epoch  pki.Epoch
	filter *replay.Filter

	// mu guards key against being wiped while an unwrap uses it.
	mu    sync.RWMutex
	key   *keys.SphinxPrivateKey
	wiped bool
}

// unwrapWith runs f with the key unless it was wiped; false means it was.
func (k *epochKey) unwrapWith(f func(*keys.SphinxPrivateKey)) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.wiped {
		return false
	}
	f(k.key)
	return true
}

func (k *epochKey) wipe() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.wiped {
		k.key.Wipe()
		k.wiped = true
	}
}

// epochKeys holds the node's Sphinx keys by epoch, persisted under dir so that a restart keeps
// using the keys it published. It erases each key (file and memory) once its epoch and the grace
// period are over, and its replay filter one more grace period later: packets admitted under the
// key near the end of its grace period are still waiting out their delay, and they must find
// their filter to learn that their replay tag is durable.
type epochKeys struct {
	dir      string
	clock    pki.Clock
	grace    time.Duration
	capacity uint64

	mu   sync.RWMutex
	keys map[pki.Epoch]*epochKey
}

func newEpochKeys(dir string, clock pki.Clock, grace time.Duration, capacity uint64) (*epochKeys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("epoch keys: %w", err)
	}
	return &epochKeys{dir: dir, clock: clock, grace: grace, capacity: capacity, keys: map[pki.Epoch]*epochKey{}}, nil
}

func (m *epochKeys) keyPath(e pki.Epoch) string {
	return filepath.Join(m.dir, fmt.Sprintf("sphinx-%d.key", e))
}

func (m *epochKeys) filterPath(e pki.Epoch) string {
	return filepath.Join(m.dir, fmt.Sprintf("replay-%d.bin", e))
}

// update makes sure keys exist for epochs cur-1 (while in grace) to cur+KeysAhead and erases
// expired ones. It returns the public keys from cur on, for the descriptor.
func (m *epochKeys) update(now time.Time) ([]pki.EpochKey, error) {
	cur, err := m.clock.At(now)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for e := cur; e <= cur+KeysAhead; e++ {
		if _, ok := m.keys[e]; ok {
			continue
		}
		k, err := m.loadOrCreate(e)
		if err != nil {
			return nil, err
		}
		m.keys[e] = k
	}
	if cur > 0 {
		if _, ok := m.keys[cur-1]; !ok && now.Before(m.clock.Start(cur).Add(m.grace)) {
			// A restart inside the grace period: keep serving the previous key if it is on disk.
			if _, err := os.Stat(m.keyPath(cur - 1)); err == nil {
				k, err := m.loadOrCreate(cur - 1)
				if err != nil {
					return nil, err
				}
				m.keys[cur-1] = k
			}
		}
	}
	for e, k := range m.keys {
		if e >= cur {
			continue
		}
		if !now.Before(m.clock.End(e).Add(m.grace)) {
			k.wipe()
			_ = os.Remove(m.keyPath(e))
		}
		if !now.Before(m.clock.End(e).Add(2 * m.grace)) {
			_ = k.filter.Remove()
			delete(m.keys, e)
		}
	}
	m.eraseStaleFiles(cur)
	var out []pki.EpochKey
	for e := cur; e <= cur+KeysAhead; e++ {
		out = append(out, pki.EpochKey{Epoch: e, Key: m.keys[e].key.Public()})
	}
	return out, nil
}

func (m *epochKeys) loadOrCreate(e pki.Epoch) (*epochKey, error) {
	path := m.keyPath(e)
	k, err := keys.LoadSphinxKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		if k, err = keys.GenerateSphinxKey(rand.Reader); err != nil {
			return nil, err
		}
		if err := keys.SaveSphinxKey(path, k); err != nil {
			k.Wipe()
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	f, err := replay.Open(m.filterPath(e), replay.Config{Epoch: uint64(e), Capacity: m.capacity, FalsePositiveRate: 1e-6})
	if err != nil {
		k.Wipe()
		return nil, fmt.Errorf("replay filter for epoch %d: %w", e, err)
	}
	return &epochKey{epoch: e, key: k, filter: f}, nil
}

// eraseStaleFiles removes key and filter files of epochs long gone (a node that was down when
// they expired).
func (m *epochKeys) eraseStaleFiles(cur pki.Epoch) {
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		return
	}
	for _, ent := range entries {
		var e uint64
		var kind string
		if n, _ := fmt.Sscanf(ent.Name(), "sphinx-%d.key", &e); n == 1 {
			kind = "key"
		} else if n, _ := fmt.Sscanf(ent.Name(), "replay-%d.bin", &e); n == 1 {
			kind = "filter"
		}
		if kind == "" {
			continue
		}
		if _, live := m.keys[pki.Epoch(e)]; !live && pki.Epoch(e)+1 < cur {
			_ = os.Remove(filepath.Join(m.dir, ent.Name()))
		}
	}
}

// candidates are the keys a packet arriving at now may be for, most likely first: the current
// epoch's, then the previous one's during the grace period after a boundary, then the next
// one's during the grace period before it (a sender whose clock runs ahead).
func (m *epochKeys) candidates(now time.Time) []*epochKey {
	cur, err := m.clock.At(now)
	if err != nil {
		return nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*epochKey
	if k, ok := m.keys[cur]; ok {
		out = append(out, k)
	}
	if k, ok := m.keys[cur-1]; ok && cur > 0 && now.Before(m.clock.Start(cur).Add(m.grace)) {
		out = append(out, k)
	}
	if k, ok := m.keys[cur+1]; ok && !now.Before(m.clock.End(cur).Add(-m.grace)) {
		out = append(out, k)
	}
	return out
}

// close syncs and closes every filter and wipes the keys from memory (the files stay for the
// restart).
func (m *epochKeys) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for e, k := range m.keys {
		errs = append(errs, k.filter.Close())
		k.wipe()
		delete(m.keys, e)
	}
	return errors.Join(errs...)
}
