// Package filter is postfix-filter's SMTP side: an after-queue content filter for Postfix
// (DESIGN.md section 1; contrib/postfix/README.md). Postfix hands each message to Server over
// SMTP; for every recipient the filter decides:
//
//   - the message carries "X-PANORAMIX-Mixable: yes" (package message) and a provider in the
//     current consensus serves the recipient's domain with the mailbox service: the message,
//     without that header field, is queued durably in the client engine (pkg/client) for
//     recipient@domain and leaves through the mixnet;
//   - the message is mixable but its domain's provider is out of the current consensus while
//     one served the domain within the engine's queue lifetime (ErrDomainAway: a provider down
//     or cut off for now): 451 4.4.4, so Postfix keeps it and retries until the provider is back
//     or Postfix's own queue lifetime ends; it is never re-injected, which would carry mail its
//     author marked for the mixnet in the clear;
//   - otherwise: the message is handed back to Postfix's re-injection smtpd, which delivers it
//     the ordinary way, without any X-PANORAMIX-Mixable field (an outside recipient need not
//     learn that the sender's client marked it; a header section the filter cannot read goes
//     back as it came). Each re-injection is logged at level info with its recipients, size and
//     reason.
//
// The filter does not implement XFORWARD (neither does go-smtp): Postfix logs re-injected mail
// as coming from the filter (client=localhost[127.0.0.1]); the original client is in Postfix's
// log line of the first queue ID and in the message's Received fields.
//
// Replies follow what Postfix understands: 250 only once every recipient's copy is durable (in
// the engine's store or accepted by the re-injection smtpd); 4xx while the directory or the link
// to the provider is unavailable, or the re-injection smtpd is, so that Postfix keeps the mail
// and retries; 5xx only for mail that can never be delivered (too large), with a human text.
//
// Exactly once: every copy passed on is recorded (package dedup) under a hash of sender,
// recipient and message bytes before the reply. When Postfix retries a message after a 4xx, the
// copies already passed on are recognised and skipped, so a transaction with several recipients
// can be split between the mixnet and re-injection without sending any copy twice. Postfix's
// scan_destination_recipient_limit = 1 (contrib/postfix/main.cf) keeps each transaction to one
// recipient all the same, so that one recipient's temporary failure never delays another's.
//
// Mail the mixnet fails to deliver (the engine's status says failed, for example an unknown
// recipient or no ACK after the retry budget) is bounced to its sender through the re-injection
// smtpd by Watch, which also forgets finished messages in the engine.
//
// What remains: a crash between the engine's commit and the record's commit sends that copy
// twice on the retry (the window is one fsync); the engine could close it by taking an
// idempotency key in Send.
package filter
