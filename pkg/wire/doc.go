// Package wire owns the long-lived links between a client and its provider and between nodes
// (DESIGN.md section 5), as written in docs/spec/wire.md.
//
// A link is TLS 1.3 from the standard library with mutual authentication. Each end presents a
// self-signed X.509 certificate made from its Ed25519 link key (keys.LinkPrivateKey), and
// trust comes only from pinning that key: the client pins the server's key (from the
// consensus), the server asks an Authorize function about the client's key (the consensus for
// nodes, the user database for clients). CAs, names and dates play no part. The key exchange
// is Go's default hybrid X25519MLKEM768, and a link that negotiated anything else is refused.
//
// Inside TLS every frame has the same size, FrameSize(g) for the network's Sphinx geometry,
// so that an observer of record sizes cannot tell a packet from a retrieve, an answer or a
// no-op. EncodeFrame and DecodeFrame implement the frame format (spec section 2) strictly.
//
// The link protocol is version 2 (ALPN panoramix-wire/2): a retrieve asks for k answers and
// gets exactly k frames (spec section 7), which Conn.Retrieve checks; a peer of version 1 is
// refused in the handshake with an error, on each side, that names both versions.
//
// Conn is one authenticated link. Server accepts links with a handshake timeout, connection
// limits in total and per peer key, and a goroutine per link in which a panic ends only that
// link. Dial opens a link; Peer keeps an outgoing link to one node up, with a bounded queue
// that never blocks the sender and reconnection with capped, jittered exponential backoff.
// Transport abstracts the network: TCP for real sockets, NewMemTransport for tests that run
// many nodes in one process.
package wire
