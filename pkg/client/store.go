package client

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The store is one bbolt file in the data directory (docs/spec/client.md section 5). Every
// update is one transaction, committed and fsync'd before the call returns.
var (
	bucketMeta     = []byte("meta")     // "seq": next retrieve sequence number (u32)
	bucketMessages = []byte("messages") // message id -> msgRecord (JSON), every message ever sent
	bucketOrder    = []byte("order")    // u64 queue order -> message id, unfinished messages only
	bucketFrags    = []byte("frags")    // message id || u16 index -> fragRecord (JSON)
	bucketFragData = []byte("fragdata") // message id || u16 index -> encoded fragment
	bucketSURBs    = []byte("surbs")    // SURB id -> surbRecord (JSON): reply keys of SURB-ACKs
	bucketRx       = []byte("rx")       // message id || u16 index -> received fragment bytes
	bucketRxMeta   = []byte("rxmeta")   // message id -> rxRecord (JSON), messages being reassembled
	bucketInbox    = []byte("inbox")    // u64 arrival order -> Received (JSON)
	bucketRxDone   = []byte("rxdone")   // message id -> completion time (JSON), for deduplication
	bucketIdem     = []byte("idem")     // idempotency key (SendOnce) -> message id, until Forget
	bucketDomains  = []byte("domains")  // provider domain -> last time a consensus listed it (RFC 3339)
	keySeq         = []byte("seq")
)

const storeFile = "client.db"

// State is a message's delivery state.
type State string

// Delivery states (docs/spec/client.md section 4).
const (
	// StateQueued: durably queued, no fragment sent yet.
	StateQueued State = "queued"
	// StateSending: some fragments sent, not all acknowledged.
	StateSending State = "sending"
	// StateDelivered: every fragment acknowledged as stored.
	StateDelivered State = "delivered"
	// StateSent: every fragment sent once to a service that does not acknowledge (queue).
	StateSent State = "sent"
	// StateFailed: given up; Reason says why.
	StateFailed State = "failed"
)

// Finished reports whether nothing more will be sent for a message in state s.
func (s State) Finished() bool { return s == StateDelivered || s == StateSent || s == StateFailed }

// Destination is where a message goes: the service at the provider that serves Domain, and the
// recipient id that service delivers to (a mail local part for mailbox).
type Destination struct {
	Domain    string `json:"domain"`
	Recipient string `json:"recipient"`
	// Service defaults to "mailbox".
	Service string `json:"service"`
	// NoReply sends without a reply path (SURB) to a service that would answer: each fragment
	// goes once, unacknowledged, and the message ends in state sent (fire and forget). The
	// services queue and drop never get one whatever it says.
	NoReply bool `json:"no_reply,omitempty"`
}

// Status is what the engine knows about one message.
type Status struct {
	ID          MessageID   `json:"-"`
	Destination Destination `json:"destination"`
	State       State       `json:"state"`
	// Size is the message length in bytes.
	Size int `json:"size"`
	// Fragments is the number of fragments; Acknowledged how many are acknowledged (or, for
	// a service without acknowledgements, sent).
	Fragments    int `json:"fragments"`
	Acknowledged int `json:"acknowledged"`
	// Transmissions counts packets sent for the message, retransmissions included.
	Transmissions int `json:"transmissions"`
	// Reason says why a message failed.
	Reason  string    `json:"reason,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Order is the message's place in the send queue.
	Order uint64 `json:"order"`
	// NeedsAck is false for services that do not answer (queue).
	NeedsAck bool `json:"needs_ack"`
	// Answer is the service's answer carried by an ack (docs/spec/fragment.md section 3): a
	// vote receipt, or the reason of a refusal. With several fragments, the answer of the last
	// ack that carried one.
	Answer []byte `json:"answer,omitempty"`
	// IdempotencyKey is the key SendOnce queued the message under (none for Send).
	IdempotencyKey []byte `json:"idempotency_key,omitempty"`
}

// fragRecord is a fragment's transmission state; its bytes are in bucketFragData, so that
// scanning for the next fragment due reads only these small records.
type fragRecord struct {
	Done     bool      `json:"done"` // acknowledged (or sent, without acks)
	Attempts int       `json:"attempts"`
	Deadline time.Time `json:"deadline"` // when an unacknowledged transmission counts as lost
	// SURBs are the ids of the SURB records of the fragment's transmissions, so that finishing
	// the message deletes them without scanning every SURB record (those made within about
	// three epochs: markSent drops the ids of pruned records).
	SURBs [][]byte `json:"surbs,omitempty"`
}

type surbRecord struct {
	Message MessageID `json:"message"`
	Index   uint16    `json:"index"`
	Created time.Time `json:"created"`
	Keys    []byte    `json:"keys"`
}

type rxRecord struct {
	Count    int       `json:"count"`
	Total    int       `json:"total"`
	Have     int       `json:"have"`
	Started  time.Time `json:"started"`
	Capacity int       `json:"capacity"`
}

// Received is a message reassembled from fragments that arrived in the user's queue.
type Received struct {
	// Seq numbers received messages in arrival order; Delete takes it.
	Seq  uint64    `json:"seq"`
	ID   MessageID `json:"id"`
	Data []byte    `json:"data"`
	At   time.Time `json:"at"`
}

type store struct {
	db  *bolt.DB
	idx dueIndex
	// wmu orders the writes that change the index (see store.update).
	wmu sync.Mutex
}

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("client store: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, storeFile), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("client store %s: %w (is another engine using this data directory?)", dir, err)
	}
	// Concurrent Sends wait at most this long to share a commit; a lone Send pays it once.
	db.MaxBatchDelay = time.Millisecond
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketMessages, bucketOrder, bucketFrags, bucketFragData, bucketSURBs, bucketRx, bucketRxMeta, bucketInbox, bucketRxDone, bucketIdem, bucketDomains, bucketMailChunks, bucketMailReady} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("client store: %w", err)
	}
	s := &store{db: db}
	if err := s.buildIndex(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *store) close() error { return s.db.Close() }

func fragKey(id MessageID, index uint16) []byte {
	k := make([]byte, MessageIDSize+2)
	copy(k, id[:])
	binary.BigEndian.PutUint16(k[MessageIDSize:], index)
	return k
}

func u64Key(n uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], n)
	return k[:]
}

func getJSON(b *bolt.Bucket, k []byte, v any) (bool, error) {
	raw := b.Get(k)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("client store: corrupt record %x in %s: %w", k, b, err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, raw)
}

func getMessage(tx *bolt.Tx, id MessageID) (*Status, error) {
	var st Status
	ok, err := getJSON(tx.Bucket(bucketMessages), id[:], &st)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownMessage, id)
	}
	st.ID = id
	return &st, nil
}

// addMessage commits a new message and its encoded fragments in one transaction, through
// bbolt's Batch, so that concurrent Sends (a postfix-filter with many Postfix connections) share
// one commit and one fsync. With st.IdempotencyKey set and already stored, it writes nothing and
// returns the id stored under the key (existed): the key and the message it names are committed
// together, so no crash leaves one without the other. The function may run more than once; it
// only writes the transaction, st.Order and the results, which it sets each time.
func (s *store) addMessage(st *Status, frags [][]byte) (existing MessageID, existed bool, err error) {
	err = s.db.Batch(func(tx *bolt.Tx) error {
		existed = false
		if st.IdempotencyKey != nil {
			idem := tx.Bucket(bucketIdem)
			if v := idem.Get(st.IdempotencyKey); v != nil {
				existed = true
				copy(existing[:], v)
				return nil
			}
			if err := idem.Put(st.IdempotencyKey, st.ID[:]); err != nil {
				return err
			}
		}
		order := tx.Bucket(bucketOrder)
		seq, err := order.NextSequence()
		if err != nil {
			return err
		}
		st.Order = seq
		if err := order.Put(u64Key(seq), st.ID[:]); err != nil {
			return err
		}
		if err := putJSON(tx.Bucket(bucketMessages), st.ID[:], st); err != nil {
			return err
		}
		fb, db := tx.Bucket(bucketFrags), tx.Bucket(bucketFragData)
		for i, f := range frags {
			if err := putJSON(fb, fragKey(st.ID, uint16(i)), &fragRecord{}); err != nil {
				return err
			}
			if err := db.Put(fragKey(st.ID, uint16(i)), f); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && !existed {
		// As stored: JSON keeps the times' wall clock only.
		e := &dueEntry{st: *st, frags: make([]fragState, len(frags))}
		e.st.Created, e.st.Updated = wallClock(st.Created), wallClock(st.Updated)
		for i := range e.frags {
			e.frags[i].index = uint16(i)
		}
		s.idx.mu.Lock()
		s.idx.set(st.Order, e)
		s.idx.mu.Unlock()
	}
	return existing, existed, err
}

// wallClock is t as it reads back from JSON.
func wallClock(t time.Time) time.Time {
	var u time.Time
	if b, err := t.MarshalJSON(); err == nil && u.UnmarshalJSON(b) == nil {
		return u
	}
	return t.Round(0)
}

// maxDomains bounds the remembered domains (a consensus lists far fewer providers).
const maxDomains = 10000

// noteDomains stores now as the last time each of domains was in the consensus and deletes
// domains not seen for longer than lifetime.
func (s *store) noteDomains(domains []string, now time.Time, lifetime time.Duration) error {
	stamp := []byte(now.UTC().Format(time.RFC3339))
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDomains)
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if t, err := time.Parse(time.RFC3339, string(v)); err != nil || now.Sub(t) > lifetime {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		for _, d := range domains {
			if b.Get([]byte(d)) == nil && b.Stats().KeyN >= maxDomains {
				break
			}
			if err := b.Put([]byte(d), stamp); err != nil {
				return err
			}
		}
		return nil
	})
}

// domainSeen returns the last time a consensus listed domain, if it is remembered.
func (s *store) domainSeen(domain string) (last time.Time, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDomains).Get([]byte(domain))
		if v == nil {
			return nil
		}
		t, err := time.Parse(time.RFC3339, string(v))
		if err != nil {
			return fmt.Errorf("client store: corrupt time of domain %q: %w", domain, err)
		}
		last, ok = t, true
		return nil
	})
	return last, ok, err
}

// idempotent returns the id of the message queued under key, if any.
func (s *store) idempotent(key []byte) (id MessageID, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketIdem).Get(key); v != nil {
			copy(id[:], v)
			ok = true
		}
		return nil
	})
	return id, ok, err
}

func (s *store) status(id MessageID) (*Status, error) {
	var st *Status
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		st, err = getMessage(tx, id)
		return err
	})
	return st, err
}

func (s *store) list() ([]Status, error) {
	var out []Status
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMessages).ForEach(func(k, v []byte) error {
			var st Status
			if err := json.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("client store: corrupt message %x: %w", k, err)
			}
			copy(st.ID[:], k)
			out = append(out, st)
			return nil
		})
	})
	// Queue order, which is also creation order.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Order < out[j-1].Order; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, err
}

// due is a fragment picked for transmission.
type due struct {
	msg      *Status
	index    uint16
	fragment []byte
	attempts int
}

// nextDue returns the first fragment, in queue order, that has never been sent or whose last
// transmission is past its deadline, or nil. Fragments past their deadline after budget
// transmissions make their message fail, unless retryFor is positive and the message is not
// older than retryFor; expired lists those messages for failMessage. Messages for which wait
// (if not nil) is true are passed over. It reads the next-due index, not the queue: its cost
// grows with the log of the queue's length and with the messages passed over.
func (s *store) nextDue(now time.Time, budget int, retryFor time.Duration, wait func(*Status) bool) (d *due, expired map[MessageID]string, err error) {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	at := dueNano(now)
	for from := uint64(0); ; {
		n := dueFirst(s.idx.root, from, at)
		if n == nil {
			return nil, expired, nil
		}
		from = n.order + 1
		e := n.e
		if e.err != nil {
			return nil, expired, e.err
		}
		if wait != nil {
			st := e.st
			if wait(&st) {
				continue
			}
		}
		for _, f := range e.frags {
			if f.done || (f.attempts > 0 && now.Before(f.deadline)) {
				continue
			}
			if f.attempts >= budget {
				age := now.Sub(e.st.Created)
				var reason string
				switch {
				case retryFor <= 0:
					reason = fmt.Sprintf("fragment %d not acknowledged after %d transmissions", f.index, f.attempts)
				case age > retryFor:
					reason = fmt.Sprintf("fragment %d not acknowledged after %d transmissions in %v (retried for %v)",
						f.index, f.attempts, age.Round(time.Second), retryFor)
				}
				if reason != "" {
					if expired == nil {
						expired = map[MessageID]string{}
					}
					expired[e.st.ID] = reason
					break
				}
			}
			st := e.st
			d = &due{msg: &st, index: f.index, attempts: f.attempts}
			err = s.db.View(func(tx *bolt.Tx) error {
				k := fragKey(st.ID, f.index)
				b := tx.Bucket(bucketFragData).Get(k)
				if b == nil {
					if tx.Bucket(bucketOrder).Get(u64Key(st.Order)) == nil {
						// Finished by a write that committed and has not yet reached
						// the index: the slot goes as if it had come a moment later.
						d = nil
						return nil
					}
					return fmt.Errorf("client store: fragment %x has no data", k)
				}
				d.fragment = bytes.Clone(b)
				return nil
			})
			if err != nil {
				return nil, expired, err
			}
			return d, expired, nil
		}
	}
}

// The next-due index (issue 17). nextDue runs at every lambda_P slot; reading and decoding
// every queued message's fragment records there made each slot cost as much as the queue is
// long. The index keeps, in memory, the transmission state of the fragments of every
// unfinished message, in a treap ordered by queue order whose nodes carry the earliest time
// any fragment of their subtree is due; the first due message is found in O(log n).
//
// The index is built from the store at open and changed only after a write transaction that
// touched a message has committed, from that message's records as the transaction left them;
// those writes are serialised by store.wmu (bbolt serialises them anyway), so the index
// changes in the order of the commits and equals what a scan would read. dueIndex.mu is held
// only to read or change the index, never across a commit's fsync, so that a lambda_P slot
// does not wait for one. addMessage needs no ordering: nobody can name its message before it
// returns.

// Due times in the index are wall-clock nanoseconds (JSON drops the monotonic reading anyway).
const (
	dueNever = math.MaxInt64 // no fragment waits for a transmission (not kept in the index)
	dueNow   = math.MinInt64 // a fragment never sent: due at once
)

// dueEntry is one unfinished message in the index.
type dueEntry struct {
	st    Status
	frags []fragState
	// err is a corrupt record met while loading the message; nextDue reports it when it
	// reaches the message, as the scan did.
	err error
}

type fragState struct {
	index    uint16
	done     bool
	attempts int
	deadline time.Time
}

// due returns the earliest time one of e's fragments is due.
func (e *dueEntry) due() int64 {
	if e.err != nil {
		return dueNow
	}
	d := int64(dueNever)
	for _, f := range e.frags {
		switch {
		case f.done:
		case f.attempts == 0:
			return dueNow
		default:
			d = min(d, dueNano(f.deadline))
		}
	}
	return d
}

type dueNode struct {
	order    uint64
	e        *dueEntry
	due, min int64 // the entry's due time; the least of the subtree's
	prio     uint64
	l, r     *dueNode
}

func (n *dueNode) fix() {
	n.min = n.due
	if n.l != nil {
		n.min = min(n.min, n.l.min)
	}
	if n.r != nil {
		n.min = min(n.min, n.r.min)
	}
}

// dueSplit splits t into the nodes ordered before order and the others.
func dueSplit(t *dueNode, order uint64) (l, r *dueNode) {
	if t == nil {
		return nil, nil
	}
	if t.order < order {
		t.r, r = dueSplit(t.r, order)
		t.fix()
		return t, r
	}
	l, t.l = dueSplit(t.l, order)
	t.fix()
	return l, t
}

// dueMerge joins l and r, every order of l before every order of r.
func dueMerge(l, r *dueNode) *dueNode {
	switch {
	case l == nil:
		return r
	case r == nil:
		return l
	case l.prio > r.prio:
		l.r = dueMerge(l.r, r)
		l.fix()
		return l
	default:
		r.l = dueMerge(l, r.l)
		r.fix()
		return r
	}
}

// dueFirst returns the first node, in queue order, at or after from whose entry is due at now.
func dueFirst(t *dueNode, from uint64, now int64) *dueNode {
	for t != nil && t.min <= now {
		if t.order < from {
			t = t.r
			continue
		}
		if n := dueFirst(t.l, from, now); n != nil {
			return n
		}
		if t.due <= now {
			return t
		}
		t = t.r
	}
	return nil
}

type dueIndex struct {
	mu   sync.Mutex
	root *dueNode
	n    int
}

// set puts e at order, replacing what was there; a nil e, or one with nothing left to send,
// removes the order.
func (x *dueIndex) set(order uint64, e *dueEntry) {
	l, r := dueSplit(x.root, order)
	m, r := dueSplit(r, order+1)
	if m != nil {
		x.n--
	}
	if e != nil {
		if d := e.due(); d != dueNever {
			m = &dueNode{order: order, e: e, due: d, prio: rand.Uint64()}
			m.fix()
			x.n++
		} else {
			m = nil
		}
	} else {
		m = nil
	}
	x.root = dueMerge(dueMerge(l, m), r)
}

// loadDue reads the index entry of message id as tx sees it: nil once the message finished.
func loadDue(tx *bolt.Tx, id MessageID) (order uint64, e *dueEntry, err error) {
	st, err := getMessage(tx, id)
	if err != nil {
		return 0, nil, err
	}
	if st.State.Finished() {
		return st.Order, nil, nil
	}
	e = &dueEntry{st: *st}
	fc := tx.Bucket(bucketFrags).Cursor()
	for k, v := fc.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, v = fc.Next() {
		var fr fragRecord
		if err := json.Unmarshal(v, &fr); err != nil {
			e.err = fmt.Errorf("client store: corrupt fragment %x: %w", k, err)
			break
		}
		e.frags = append(e.frags, fragState{index: binary.BigEndian.Uint16(k[MessageIDSize:]), done: fr.Done, attempts: fr.Attempts, deadline: fr.Deadline})
	}
	return st.Order, e, nil
}

// dueNano is t in wall-clock nanoseconds, clamped to the range UnixNano defines.
func dueNano(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64+1)):
		return dueNow
	case t.After(time.Unix(0, math.MaxInt64-1)):
		return dueNever - 1
	}
	return t.UnixNano()
}

// buildIndex loads the index of every queued message.
func (s *store) buildIndex() error {
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOrder).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 || len(v) != MessageIDSize {
				return fmt.Errorf("client store: corrupt queue entry %x", k)
			}
			var id MessageID
			copy(id[:], v)
			order := binary.BigEndian.Uint64(k)
			_, e, err := loadDue(tx, id)
			if err != nil {
				// Reported when nextDue reaches it, as the scan did, rather than keeping
				// the engine from starting.
				e = &dueEntry{st: Status{ID: id, Order: order}, err: err}
			}
			s.idx.set(order, e)
		}
		return nil
	})
}

// update runs fn in a write transaction and then brings the index in step with the messages
// fn touched, as the transaction left them.
func (s *store) update(fn func(tx *bolt.Tx, touch func(MessageID)) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	type change struct {
		order uint64
		e     *dueEntry
	}
	var changes []change
	err := s.db.Update(func(tx *bolt.Tx) error {
		changes = changes[:0]
		var touched []MessageID
		if err := fn(tx, func(id MessageID) { touched = append(touched, id) }); err != nil {
			return err
		}
		for _, id := range touched {
			order, e, err := loadDue(tx, id)
			if err != nil {
				return err
			}
			changes = append(changes, change{order, e})
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.idx.mu.Lock()
	for _, c := range changes {
		s.idx.set(c.order, c.e)
	}
	s.idx.mu.Unlock()
	return nil
}

// finish ends a message: sets its final state and forgets its fragments, queue entry and SURB
// reply keys.
func finish(tx *bolt.Tx, st *Status, state State, reason string, now time.Time) error {
	st.State, st.Reason, st.Updated = state, reason, now
	if err := putJSON(tx.Bucket(bucketMessages), st.ID[:], st); err != nil {
		return err
	}
	if err := tx.Bucket(bucketOrder).Delete(u64Key(st.Order)); err != nil {
		return err
	}
	// The message's SURB records, found through its fragment records. Records written before
	// fragment records listed them are left to prune (store.prune), like those of SURBs
	// that never come back.
	sb := tx.Bucket(bucketSURBs)
	fc := tx.Bucket(bucketFrags).Cursor()
	for k, v := fc.Seek(st.ID[:]); k != nil && bytes.HasPrefix(k, st.ID[:]); k, v = fc.Next() {
		var fr fragRecord
		if err := json.Unmarshal(v, &fr); err != nil {
			continue // deleted below with the rest of the fragment
		}
		for _, id := range fr.SURBs {
			if err := sb.Delete(id); err != nil {
				return err
			}
		}
	}
	for _, name := range [][]byte{bucketFrags, bucketFragData} {
		fc := tx.Bucket(name).Cursor()
		for k, _ := fc.Seek(st.ID[:]); k != nil && bytes.HasPrefix(k, st.ID[:]); k, _ = fc.Seek(st.ID[:]) {
			if err := fc.Delete(); err != nil {
				return err
			}
		}
	}
	return nil
}

// forget deletes the record of a finished message.
func (s *store) forget(id MessageID) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		st, err := getMessage(tx, id)
		if err != nil {
			return err
		}
		if !st.State.Finished() {
			return fmt.Errorf("%w: message %s is %s", ErrNotFinished, id, st.State)
		}
		if st.IdempotencyKey != nil {
			if err := tx.Bucket(bucketIdem).Delete(st.IdempotencyKey); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMessages).Delete(id[:])
	})
}

// failMessage marks a message failed with reason, unless it already finished.
func (s *store) failMessage(id MessageID, reason string, now time.Time) error {
	return s.update(func(tx *bolt.Tx, touch func(MessageID)) error {
		st, err := getMessage(tx, id)
		if err != nil {
			return err
		}
		if st.State.Finished() {
			return nil
		}
		touch(id)
		return finish(tx, st, StateFailed, reason, now)
	})
}

// markSent records a transmission of a fragment: one more attempt, its deadline, and the
// reply keys of its SURB (nil for a service without acknowledgements, which makes the fragment
// done at once). It commits before the packet is written to the link, so that an ACK that
// arrives after a crash still finds its keys; a crash between the commit and the write costs
// only a retransmission after the deadline.
func (s *store) markSent(id MessageID, index uint16, surbID *[16]byte, sr *surbRecord, deadline, now time.Time) error {
	return s.update(func(tx *bolt.Tx, touch func(MessageID)) error {
		st, err := getMessage(tx, id)
		if err != nil {
			return err
		}
		if st.State.Finished() {
			return nil
		}
		touch(id)
		fb := tx.Bucket(bucketFrags)
		var fr fragRecord
		if ok, err := getJSON(fb, fragKey(id, index), &fr); err != nil || !ok {
			return fmt.Errorf("client store: fragment %d of %s missing (%v)", index, id, err)
		}
		fr.Attempts++
		fr.Deadline = deadline
		st.Transmissions++
		st.Updated = now
		if st.State == StateQueued {
			st.State = StateSending
		}
		if sr == nil {
			fr.Done = true
			st.Acknowledged++
		} else {
			if err := putJSON(tx.Bucket(bucketSURBs), surbID[:], sr); err != nil {
				return err
			}
			// Past the retry budget (RetryFor) a fragment may be sent for days: the list keeps
			// only the SURBs whose keys are still stored (store.prune deletes the others), so
			// it stays as long as the transmissions of about three epochs.
			sb := tx.Bucket(bucketSURBs)
			fr.SURBs = slices.DeleteFunc(fr.SURBs, func(id []byte) bool { return sb.Get(id) == nil })
			fr.SURBs = append(fr.SURBs, bytes.Clone(surbID[:]))
		}
		if st.Acknowledged == st.Fragments && !st.NeedsAck {
			return finish(tx, st, StateSent, "", now)
		}
		if err := putJSON(fb, fragKey(id, index), &fr); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketMessages), id[:], st)
	})
}

// ackResult says what an incoming SURB reply did.
type ackResult int

const (
	ackUnknownSURB ackResult = iota // no keys for the SURB id: already used, pruned, or not ours
	ackBad                          // the reply did not decrypt or was not a valid ack for the fragment
	ackDuplicate                    // a valid ack for a fragment already done
	ackApplied
)

// applyReply handles a reply that came back through a SURB-ACK, and sets the next retrieve
// sequence number, in one transaction, so that a retrieved item takes effect exactly once.
// open decrypts the reply with the SURB's keys and parses the ack; the keys are deleted either
// way (a SURB answers once).
func (s *store) applyReply(surbID [16]byte, open func(keys []byte) (*Ack, error), nextSeq uint32, now time.Time) (res ackResult, st *Status, err error) {
	err = s.update(func(tx *bolt.Tx, touch func(MessageID)) error {
		if err := putSeq(tx, nextSeq); err != nil {
			return err
		}
		res, st, err = applyReplyTx(tx, touch, surbID, open, now)
		return err
	})
	return res, st, err
}

// applyReplyTx is applyReply inside the caller's transaction, without the sequence number: the
// engine applies all the items of one retrieve exchange and the next sequence number in one
// transaction (docs/spec/client.md section 6). An error fails the transaction; a reply that
// is bad or for an unknown SURB is a result, not an error.
func applyReplyTx(tx *bolt.Tx, touch func(MessageID), surbID [16]byte, open func(keys []byte) (*Ack, error), now time.Time) (res ackResult, st *Status, err error) {
	err = func() error {
		sb := tx.Bucket(bucketSURBs)
		var sr surbRecord
		ok, err := getJSON(sb, surbID[:], &sr)
		if err != nil || !ok {
			res = ackUnknownSURB
			return err
		}
		if err := sb.Delete(surbID[:]); err != nil {
			return err
		}
		ack, oerr := open(sr.Keys)
		wipe(sr.Keys)
		if oerr != nil || ack.ID != sr.Message || ack.Index != sr.Index {
			res = ackBad
			return nil
		}
		st, err = getMessage(tx, sr.Message)
		if err != nil {
			return err
		}
		if st.State.Finished() {
			res = ackDuplicate
			return nil
		}
		touch(st.ID)
		if len(ack.Answer) > 0 {
			st.Answer = ack.Answer
		}
		if ack.Status != AckStored {
			res = ackApplied
			reason := fmt.Sprintf("fragment %d: %s", ack.Index, ack.Status)
			if len(ack.Answer) > 0 && printable(ack.Answer) {
				reason += ": " + string(ack.Answer)
			}
			return finish(tx, st, StateFailed, reason, now)
		}
		fb := tx.Bucket(bucketFrags)
		var fr fragRecord
		if ok, err := getJSON(fb, fragKey(sr.Message, sr.Index), &fr); err != nil || !ok {
			return fmt.Errorf("client store: fragment %d of %s missing (%v)", sr.Index, sr.Message, err)
		}
		if fr.Done {
			res = ackDuplicate
			return nil
		}
		res = ackApplied
		fr.Done = true
		st.Acknowledged++
		st.Updated = now
		if st.Acknowledged == st.Fragments {
			return finish(tx, st, StateDelivered, "", now)
		}
		if err := putJSON(fb, fragKey(sr.Message, sr.Index), &fr); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketMessages), st.ID[:], st)
	}()
	return res, st, err
}

// exchangeTx applies the items of one retrieve exchange inside one store transaction.
type exchangeTx struct {
	tx    *bolt.Tx
	touch func(MessageID)
}

func (x *exchangeTx) applyReply(surbID [16]byte, open func(keys []byte) (*Ack, error), now time.Time) (ackResult, *Status, error) {
	return applyReplyTx(x.tx, x.touch, surbID, open, now)
}

func (x *exchangeTx) receive(f *Fragment, capacity, maxPartial, maxInbox int, now time.Time) (*Received, error) {
	return receiveTx(x.tx, f, capacity, maxPartial, maxInbox, now)
}

// exchange runs fn, which applies the items of one retrieve exchange, and records nextSeq,
// the next sequence number of the reply queue (or of the mail queue when mail), in one
// transaction (docs/spec/client.md section 6): the items' effects and the number that lets the
// provider delete them commit together or not at all. An error of fn rolls everything back.
func (s *store) exchange(mail bool, nextSeq uint32, fn func(x *exchangeTx) error) error {
	return s.update(func(tx *bolt.Tx, touch func(MessageID)) error {
		if err := fn(&exchangeTx{tx: tx, touch: touch}); err != nil {
			return err
		}
		if mail {
			return putMailSeq(tx, nextSeq)
		}
		return putSeq(tx, nextSeq)
	})
}

// printable reports whether an answer is printable ASCII text, fit to quote in a reason.
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func putSeq(tx *bolt.Tx, seq uint32) error {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], seq)
	return tx.Bucket(bucketMeta).Put(keySeq, b[:])
}

func (s *store) seq() (uint32, error) {
	var seq uint32
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta).Get(keySeq); len(b) == 4 {
			seq = binary.BigEndian.Uint32(b)
		}
		return nil
	})
	return seq, err
}

// receive stores a fragment that arrived as a message in the user's queue, and the next
// retrieve sequence number, in one transaction. Fragments are kept by (message id, index), so a
// retransmitted fragment is stored once; when the last one is in, the message moves to the
// inbox. At most maxPartial messages are being reassembled at once; fragments of further
// messages are dropped (the sender retransmits, if it expects an answer), and so are those of
// a new message while maxInbox messages are received (and not deleted) or in reassembly.
func (s *store) receive(f *Fragment, capacity, maxPartial, maxInbox int, nextSeq uint32, now time.Time) (complete *Received, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := putSeq(tx, nextSeq); err != nil {
			return err
		}
		complete, err = receiveTx(tx, f, capacity, maxPartial, maxInbox, now)
		return err
	})
	return complete, err
}

// receiveTx is receive inside the caller's transaction, without the sequence number. Its
// refusals (ErrMalformed, errTooManyPartial, errInboxFull) come before it writes anything, so
// the caller may drop the fragment and go on with the transaction.
func receiveTx(tx *bolt.Tx, f *Fragment, capacity, maxPartial, maxInbox int, now time.Time) (complete *Received, err error) {
	err = func() error {
		rx, meta, done := tx.Bucket(bucketRx), tx.Bucket(bucketRxMeta), tx.Bucket(bucketRxDone)
		if done.Get(f.ID[:]) != nil {
			return nil // a retransmission of a fragment of a message already complete
		}
		var rr rxRecord
		ok, err := getJSON(meta, f.ID[:], &rr)
		if err != nil {
			return err
		}
		if !ok {
			partial := countKeys(meta, maxPartial)
			if partial >= maxPartial {
				return fmt.Errorf("%w: %d messages already being reassembled", errTooManyPartial, maxPartial)
			}
			if partial+countKeys(tx.Bucket(bucketInbox), maxInbox) >= maxInbox {
				return fmt.Errorf("%w: %d messages received or being reassembled", errInboxFull, maxInbox)
			}
			rr = rxRecord{Count: int(f.Count), Total: int(f.TotalLength), Started: now, Capacity: capacity}
		}
		if rr.Count != int(f.Count) || rr.Total != int(f.TotalLength) || rr.Capacity != capacity {
			return fmt.Errorf("%w: fragment %d of %s disagrees with earlier fragments", ErrMalformed, f.Index, f.ID)
		}
		k := fragKey(f.ID, f.Index)
		if rx.Get(k) != nil {
			return nil // a retransmission
		}
		if err := rx.Put(k, f.Data); err != nil {
			return err
		}
		rr.Have++
		if rr.Have < rr.Count {
			return putJSON(meta, f.ID[:], &rr)
		}
		data := make([]byte, 0, rr.Total)
		c := rx.Cursor()
		for k, v := c.Seek(f.ID[:]); k != nil && bytes.HasPrefix(k, f.ID[:]); k, v = c.Seek(f.ID[:]) {
			data = append(data, v...)
			if err := c.Delete(); err != nil {
				return err
			}
		}
		if err := meta.Delete(f.ID[:]); err != nil {
			return err
		}
		if err := putJSON(done, f.ID[:], now); err != nil {
			return err
		}
		inbox := tx.Bucket(bucketInbox)
		seq, err := inbox.NextSequence()
		if err != nil {
			return err
		}
		complete = &Received{Seq: seq, ID: f.ID, Data: data, At: now}
		return putJSON(inbox, u64Key(seq), complete)
	}()
	if err != nil {
		complete = nil
	}
	return complete, err
}

// countKeys counts the keys of b, stopping at limit.
func countKeys(b *bolt.Bucket, limit int) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil && n < limit; k, _ = c.Next() {
		n++
	}
	return n
}

var (
	errTooManyPartial = errors.New("client: too many partial messages")
	errInboxFull      = errors.New("client: inbox full")
)

func (s *store) inbox() ([]Received, error) {
	var out []Received
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketInbox).ForEach(func(k, v []byte) error {
			var r Received
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("client store: corrupt inbox item %x: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

func (s *store) deleteReceived(seq uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInbox)
		if b.Get(u64Key(seq)) == nil {
			return fmt.Errorf("%w: received message %d", ErrUnknownMessage, seq)
		}
		return b.Delete(u64Key(seq))
	})
}

// prune forgets SURB reply keys created before cutoff (the network has erased the epoch keys
// their routes used, so no reply can come back through them) and partial messages started
// before rxCutoff, and the ids of messages completed before rxCutoff (kept until then so that
// late retransmissions of their fragments are recognized).
func (s *store) prune(cutoff, rxCutoff time.Time) (surbs, partial int, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		sb := tx.Bucket(bucketSURBs)
		var drop [][]byte
		err := sb.ForEach(func(k, v []byte) error {
			var sr surbRecord
			if err := json.Unmarshal(v, &sr); err != nil || sr.Created.Before(cutoff) {
				drop = append(drop, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := sb.Delete(k); err != nil {
				return err
			}
		}
		surbs = len(drop)
		meta, rx := tx.Bucket(bucketRxMeta), tx.Bucket(bucketRx)
		drop = drop[:0]
		err = meta.ForEach(func(k, v []byte) error {
			var rr rxRecord
			if err := json.Unmarshal(v, &rr); err != nil || rr.Started.Before(rxCutoff) {
				drop = append(drop, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range drop {
			if err := meta.Delete(id); err != nil {
				return err
			}
			c := rx.Cursor()
			for k, _ := c.Seek(id); k != nil && bytes.HasPrefix(k, id); k, _ = c.Seek(id) {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		partial = len(drop)
		done := tx.Bucket(bucketRxDone)
		drop = drop[:0]
		err = done.ForEach(func(k, v []byte) error {
			var at time.Time
			if err := json.Unmarshal(v, &at); err != nil || at.Before(rxCutoff) {
				drop = append(drop, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := done.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return surbs, partial, err
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
