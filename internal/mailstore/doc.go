// Package mailstore is the provider's built-in mailbox store: users (password hash, quota) and,
// per user, IMAP mailboxes with UIDVALIDITY, UIDNEXT and messages (UID, flags, internal date,
// RFC 5322 bytes), kept in one bbolt file (DESIGN.md section 7).
//
// Every write is one bbolt transaction and returns only after its commit, which fsyncs: when
// Deliver returns, the message survives a crash, so the mixnet's mailbox service may acknowledge
// it (DESIGN.md section 3, step 6). Writes that change a user's mail bump that user's change
// counter and wake whoever waits on Changes, which is how concurrent IMAP sessions of one user see
// each other's changes and how IDLE learns of a delivery.
//
// Layout of the bbolt file:
//
//	users/<name>                          JSON userRecord (password hash, quota, bytes used)
//	mail/<name>/boxes/<mailbox name>      JSON boxRecord (data id, UIDVALIDITY, UIDNEXT, ...)
//	mail/<name>/data/<id>/meta/<uid>      internal date, zone, flags
//	mail/<name>/data/<id>/body/<uid>      the message bytes
//	global/uidvalidity                    last UIDVALIDITY handed out
//
// UIDs are 4-byte big-endian keys, so a cursor walks a mailbox in UID order. A mailbox's data
// lives under a numeric id rather than its name, so RENAME is a change of one index entry and a
// session that holds a name never reads another mailbox's messages.
package mailstore
