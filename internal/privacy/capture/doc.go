// Package capture records the links of a local network as a global passive observer sees them
// (issue 14): per TCP connection, which end dialled, and per direction the time and size of
// every frame. No keys and no plaintext are involved: only what crosses the wire in the clear.
//
// How: tcpdump on the loopback interface writes a classic pcap file (Start, Stop), and this
// package's own reader (pcap.go; Ethernet, raw IP and Linux SLL/SLL2 link types, IPv4 and IPv6)
// and TCP follower (stream.go) turn it into Conns. This is faithful because it is exactly a wire
// tap: the kernel hands tcpdump every segment the programs exchanged, and nothing from inside
// the programs is used. A test hook inside pkg/wire would see frames before TLS and could not
// show what TLS and TCP add or hide.
//
// What is kept of each packet is its headers and the first bytes of its payload (Snaplen), and
// pure ACKs are filtered out in the kernel, so that a long run with many users fits on disk.
// From the TCP sequence numbers the follower finds the offsets where TLS records begin and reads
// their 5-byte cleartext headers (RFC 8446 section 5.1), which give each record's length, so a
// Frame has both its TCP payload bytes (Wire, always known) and the bytes the wire layer wrote
// (Size, the records' plaintext, when every header of the burst was captured). A frame is a
// burst of segments in one direction with pauses of at most BurstGap: crypto/tls writes the
// records of one Write back to back.
//
// Differences from a real network, stated for the measurement (docs/PRIVACY.md): the loopback
// MTU is 65536, so a 16 KiB TLS record travels as one segment where a WAN with a 1500-byte MTU
// would show about a dozen; the segment count differs but the burst's bytes and time do not.
// Loopback has no propagation delay, loss or reordering, so timing correlation is if anything
// easier here than on a WAN. Which end dialled is read from the SYN, or, for connections opened
// before the capture, from Options.Ports (the listening end is the server).
package capture
