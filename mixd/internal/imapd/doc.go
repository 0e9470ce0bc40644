// Package imapd is the provider's built-in IMAP server (DESIGN.md section 7): go-imap/v2's
// imapserver speaking the protocol, over the mailstore package's durable store.
//
// It listens on up to two ports: one with implicit TLS (like 993) and one in clear text that
// offers STARTTLS (like 143). LOGIN and AUTHENTICATE PLAIN check argon2id hashes and are refused
// before TLS.
//
// What a client can make the server spend is bounded, and over a bound the client is refused
// at once rather than queued. The defaults, all in Config (mixd sets the connection ones from
// its imap config section, see configs/mixd-provider.toml):
//
//   - Connections: 1,000 in all and 20 per client address (an IPv6 client's /64), loopback
//     included; one over either is greeted with BYE and closed (conn.go).
//   - Login deadline: a connection has 1 minute from its accept to log in. It is absolute: no
//     command (NOOP, CAPABILITY, STARTTLS) extends it, since every read and write deadline set
//     before the login is cut to it.
//   - Password checks (auth.go): 5 failed logins per user name and 20 per address in 5
//     minutes. A login counts as a failure from the moment it is let through until its hash is
//     checked, so parallel guesses cannot overrun the limit. One password per address and one
//     per user is checked at a time, with up to 4 more of each waiting; 2 hash workers with a
//     queue of 32. Anything beyond is answered NO [UNAVAILABLE] without a hash, whatever the
//     password, and a login that is let through is always checked in full, so neither the
//     answer nor its time says whether a refused password was right.
//   - Sessions: 20 logged-in sessions per user; APPEND literals up to 32 MiB, 8 read at once.
//
// An attacker who guesses at one user's name still locks that user out for the window: the
// price of a per-user limit, which an address limit alone would not give against a botnet.
//
// Each session keeps its own view of the selected mailbox: the sequence of UIDs the client knows
// and their flags. Whenever the store reports a change for the user (another session, or a
// delivery from the mixnet) the view is compared with the store and the differences are sent as
// EXPUNGE, EXISTS and FETCH FLAGS responses: after each command, and at once while the client
// IDLEs. Expunges are held back during FETCH, STORE and SEARCH by sequence number, as RFC 3501
// section 7.4.1 requires.
package imapd
