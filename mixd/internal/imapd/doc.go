// Package imapd is the provider's built-in IMAP server (DESIGN.md section 7): go-imap/v2's
// imapserver speaking the protocol, over the mailstore package's durable store.
//
// It listens on up to two ports: one with implicit TLS (like 993) and one in clear text that
// offers STARTTLS (like 143). LOGIN and AUTHENTICATE PLAIN check argon2id hashes and are refused
// before TLS. Failed logins are counted per user name and per client address; over the limit,
// further attempts are refused without spending a hash computation until the window passes.
//
// Each session keeps its own view of the selected mailbox: the sequence of UIDs the client knows
// and their flags. Whenever the store reports a change for the user (another session, or a
// delivery from the mixnet) the view is compared with the store and the differences are sent as
// EXPUNGE, EXISTS and FETCH FLAGS responses: after each command, and at once while the client
// IDLEs. Expunges are held back during FETCH, STORE and SEARCH by sequence number, as RFC 3501
// section 7.4.1 requires.
package imapd
