// Package mailbox is the provider's mailbox service (DESIGN.md sections 3 and 7, issue 5): it
// receives the fragments of mail messages that arrive at the final hop addressed to service
// "mailbox" (docs/spec/services.md section 2), stores them durably, acknowledges each one through
// its SURB (pkg/client fragment and ack formats), reassembles a message once all its fragments
// are there and delivers it into the recipient's mailbox through a Backend: the embedded mail
// store (NewStoreBackend) or an LMTP hand-off to an existing server such as Dovecot
// (NewLMTPBackend). In front of either, NewLinkBackend holds the mail of users whose client reads
// it through its link: sealed to the user's link key, in chunks in the user's mail queue in the
// provider's store (docs/spec/services.md section 6), exactly once and within the user's quota.
//
// Promises, in order:
//   - A fragment is acknowledged as stored only after the bbolt transaction that holds it has
//     been committed (fsync'd). A retransmitted fragment is recognised by (user, message id,
//     index), not stored twice, and acknowledged again: the sender may have lost the first ack.
//   - The transaction that stores the last fragment of a message also puts the message in the
//     outbox, so a complete message survives a crash and is delivered by Run after a restart.
//   - Run delivers outbox messages one at a time. A temporary failure (LMTP server down, 4xx)
//     keeps the message in the outbox and retries with exponential backoff. On success the
//     fragments are deleted and the message id is remembered as delivered for at least Expiry,
//     so a late retransmission is acknowledged but never delivered twice. A permanent failure
//     (unknown user, over quota, too large, refused) is remembered the same way, and
//     retransmissions are answered with that status: the sender's client turns it into a bounce.
//   - Incomplete messages older than Expiry are dropped with a log line and a metric.
//   - A message is charged the fragment bytes stored, never the length its first fragment
//     claims, and room for a fragment is made by evicting incomplete messages (the recipient's,
//     then anyone's, whose latest fragment is oldest first), so that fragments nobody completes
//     cannot keep a real message out (docs/spec/services.md section 4). An evicted message is
//     remembered as over quota: its sender is told at its next fragment and bounces the mail.
//
// A crash in the instant between the backend's commit and the service's own record of the
// delivery (two separate files or servers) would deliver the message again after the restart,
// except with a backend that implements OnceBackend: the embedded store commits the message id
// with the message and ignores a second delivery of it, so with the embedded store delivery is
// exactly once. With LMTP that instant remains the only place a duplicate can arise.
//
// Layout of the bbolt file (keys: msgkey = u8 len(user) || user || 16-byte message id):
//
//	frags/<msgkey><u16 index>   fragment data
//	msgs/<msgkey>               u16 count, u16 received, u32 total length, i64 first seen (ns), u8 complete,
//	                            i64 latest fragment (ns), u32 bytes stored
//	outbox/<msgkey>             i64 time completed (ns): complete, waiting for delivery
//	done/<msgkey>               u8 ack status, i64 time (ns): delivered (status stored) or failed
//	pending/u<user>             u64 bytes of the user's incomplete messages, u64 bytes of its complete
//	                            ones not yet delivered, u32 number of incomplete ones
//	pending/t                   u64 bytes of all messages not yet delivered
//	lru/<i64 latest><msgkey>    incomplete messages in eviction order
//	ulru/<u8 len><user><i64 latest><id>  one user's incomplete messages in eviction order
//
// The pending, lru and ulru buckets are derived: New recomputes them from msgs and frags.
package mailbox
