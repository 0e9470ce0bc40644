// Package proxy is mailproxy's daemon (DESIGN.md section 3, steps 1, 2 and 7;
// docs/spec/mailproxy.md). It owns:
//
//   - a loopback SMTP server for the user's mail program that checks, strips and queues each
//     mail once per recipient (PGP/MIME-encrypted when the recipient's key is in the account's
//     keyring) in the client engine (pkg/client) of the sending account, and relays mail for
//     domains outside the mixnet to a configured smarthost;
//   - a monitor that logs outcomes and turns failed deliveries into bounces (RFC 3464) in the
//     sender's own mailbox, sent through the mixnet like any mail;
//   - a local status API on a Unix socket for `mailproxy status`.
//
// A `250` is answered only once every recipient's copy is committed to the engine's store
// (fsync'd) and the proxy's own record of it is committed too.
package proxy
