package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
)

// maxSweepInterval bounds how late an incomplete message is dropped after it expires.
const maxSweepInterval = time.Minute

// retryState is the backoff of one outbox message. It lives in memory: after a restart every
// outbox message is tried at once, which is what a restart is for.
type retryState struct {
	attempts int
	next     time.Time
}

// Run delivers complete messages from the outbox, retrying temporary failures with exponential
// backoff, and drops expired incomplete messages. It returns nil when ctx is cancelled.
func (s *Service) Run(ctx context.Context) error {
	sweepEvery := min(max(s.expiry/4, 10*time.Millisecond), maxSweepInterval)
	retry := make(map[string]*retryState)
	var nextSweep time.Time
	for {
		if ctx.Err() != nil {
			return nil
		}
		if now := time.Now(); !now.Before(nextSweep) {
			if err := s.sweep(); err != nil {
				s.log.Error("mailbox expiry sweep failed", "err", err)
			}
			nextSweep = now.Add(sweepEvery)
		}
		nextRetry, err := s.deliverDue(ctx, retry)
		if err != nil {
			s.log.Error("mailbox outbox failed", "err", err)
			nextRetry = time.Now().Add(s.retryMin)
		}
		wait := time.Until(nextSweep)
		if !nextRetry.IsZero() {
			wait = min(wait, time.Until(nextRetry))
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// deliverDue tries every outbox message whose backoff has passed and returns when the next one
// is due (zero when none waits).
func (s *Service) deliverDue(ctx context.Context, retry map[string]*retryState) (time.Time, error) {
	var keys [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, _ []byte) error {
			keys = append(keys, bytes.Clone(k))
			return nil
		})
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("list outbox: %w", err)
	}
	inOutbox := make(map[string]bool, len(keys))
	var next time.Time
	for _, mk := range keys {
		inOutbox[string(mk)] = true
		if ctx.Err() != nil {
			return time.Time{}, nil
		}
		st := retry[string(mk)]
		if st != nil && time.Now().Before(st.next) {
			if next.IsZero() || st.next.Before(next) {
				next = st.next
			}
			continue
		}
		err := s.deliverMessage(ctx, mk)
		if err == nil {
			delete(retry, string(mk))
			continue
		}
		if ctx.Err() != nil {
			return time.Time{}, nil
		}
		if errors.Is(err, errCorrupt) {
			return time.Time{}, err
		}
		if st == nil {
			st = &retryState{}
			retry[string(mk)] = st
		}
		st.attempts++
		backoff := s.retryMin << min(st.attempts-1, 30)
		if backoff <= 0 || backoff > s.retryMax {
			backoff = s.retryMax
		}
		st.next = time.Now().Add(backoff)
		if next.IsZero() || st.next.Before(next) {
			next = st.next
		}
		s.m.retries.Inc()
		user, id, _ := splitMsgKey(mk)
		s.log.Warn("mailbox delivery failed, will retry", "user", user, "id", id, "attempt", st.attempts, "retry_in", backoff, "err", err)
	}
	for k := range retry {
		if !inOutbox[k] {
			delete(retry, k)
		}
	}
	return next, nil
}

// deliverMessage reassembles one outbox message and hands it to the backend. It returns nil
// when the message is finished (delivered, or failed for good and recorded as such) and the
// backend's error when it should be retried.
func (s *Service) deliverMessage(ctx context.Context, mk []byte) error {
	user, id, err := splitMsgKey(mk)
	if err != nil {
		return err
	}
	var rec *msgRecord
	var frags []*client.Fragment
	err = s.db.View(func(tx *bolt.Tx) error {
		var err error
		if rec, err = getMsg(tx, mk); err != nil || rec == nil {
			return err
		}
		c := tx.Bucket(bucketFrags).Cursor()
		for k, v := c.Seek(mk); k != nil && len(k) == len(mk)+2 && bytes.HasPrefix(k, mk); k, v = c.Next() {
			index := uint16(k[len(mk)])<<8 | uint16(k[len(mk)+1])
			frags = append(frags, &client.Fragment{ID: id, Index: index, Count: rec.Count, TotalLength: rec.Total, Data: bytes.Clone(v)})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	if rec == nil {
		// An outbox entry without its message cannot be delivered; drop the entry.
		s.log.Error("mailbox outbox entry without a message", "user", user, "id", id)
		return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketOutbox).Delete(mk) })
	}
	msg, err := client.Join(frags)
	if err == nil && len(msg) > s.maxSize {
		err = fmt.Errorf("message of %d bytes over the limit of %d", len(msg), s.maxSize)
	}
	if err != nil {
		s.log.Error("mailbox cannot reassemble a message", "user", user, "id", id, "err", err)
		s.m.failures.WithLabelValues(reasonMalformed).Inc()
		return s.finish(mk, rec, client.AckMalformed)
	}
	if ob, ok := s.backend.(OnceBackend); ok {
		err = ob.DeliverOnce(ctx, user, id[:], msg)
	} else {
		err = s.backend.Deliver(ctx, user, msg)
	}
	if err == nil {
		if err := s.finish(mk, rec, client.AckStored); err != nil {
			return err
		}
		s.m.delivered.Inc()
		s.log.Info("mail delivered", "user", user, "id", id, "size", len(msg), "fragments", rec.Count)
		return nil
	}
	status, permanent := permanentStatus(err)
	if !permanent {
		return err
	}
	if err := s.finish(mk, rec, status); err != nil {
		return err
	}
	s.m.failures.WithLabelValues(failureReason(err)).Inc()
	s.log.Warn("mail refused by the backend; retransmissions will be answered with the status", "user", user, "id", id, "status", status, "err", err)
	return nil
}

// permanentStatus maps a permanent backend error to the ack status that reports it.
func permanentStatus(err error) (client.AckStatus, bool) {
	switch {
	case errors.Is(err, ErrUnknownUser):
		return client.AckUnknownRecipient, true
	case errors.Is(err, ErrOverQuota):
		return client.AckOverQuota, true
	case errors.Is(err, ErrTooLarge):
		return client.AckTooLarge, true
	case errors.Is(err, ErrRejected):
		// No ack status says "refused by the mailbox server"; the sender learns the message
		// was not taken, which is what matters for its bounce.
		return client.AckMalformed, true
	}
	return 0, false
}

// finish drops a message's fragments and remembers its outcome.
func (s *Service) finish(mk []byte, rec *msgRecord, status client.AckStatus) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := dropMessage(tx, mk, rec); err != nil {
			return err
		}
		d := doneRecord{Status: status, At: s.now()}
		return tx.Bucket(bucketDone).Put(mk, d.marshal())
	})
	if err != nil {
		return fmt.Errorf("record outcome: %w", err)
	}
	s.m.outbox.Dec()
	return nil
}

// sweep drops incomplete messages older than the expiry and forgets outcomes older than it.
func (s *Service) sweep() error {
	now := s.now()
	cutoff := now.Add(-s.expiry)
	type expired struct {
		key []byte
		rec msgRecord
	}
	var gone []expired
	err := s.db.Update(func(tx *bolt.Tx) error {
		gone = gone[:0]
		var forget [][]byte
		err := tx.Bucket(bucketMsgs).ForEach(func(k, v []byte) error {
			rec, err := parseMsgRecord(v)
			if err != nil {
				return err
			}
			if !rec.Complete && rec.First.Before(cutoff) {
				gone = append(gone, expired{bytes.Clone(k), rec})
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketDone).ForEach(func(k, v []byte) error {
			d, err := parseDoneRecord(v)
			if err != nil {
				return err
			}
			if d.At.Before(cutoff) {
				forget = append(forget, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, e := range gone {
			if err := dropMessage(tx, e.key, &e.rec); err != nil {
				return err
			}
		}
		for _, k := range forget {
			if err := tx.Bucket(bucketDone).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range gone {
		user, id, _ := splitMsgKey(e.key)
		s.m.expired.Inc()
		s.log.Info("incomplete mail expired", "user", user, "id", id, "fragments", e.rec.Received, "of", e.rec.Count, "age", now.Sub(e.rec.First).Round(time.Second))
	}
	return nil
}
