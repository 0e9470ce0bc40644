// Package netlab runs a PANORAMIX network across Linux network namespaces, one machine's worth
// of daemons per namespace, so that the daemons talk over real interfaces and addresses with the
// faults of a wide-area network: delay and jitter per link, packet loss, partitions and crashes.
//
// Layout (Lab): a bridge in a namespace of its own joins one namespace per host through veth
// pairs, on 10.50.0.0/24 (addresses in Hosts). The directory authority, three mixes, two
// providers and two users' mailproxies each get a namespace. Each daemon is the real binary
// (built by pkg/testnet.Build), started with `ip netns exec` from a configuration written the way
// docs/operators tells an operator to write it: the example in configs/ with the machine's own
// values set (Config), never a configuration of the lab's own design.
//
// Faults:
//   - delay and jitter: the kernel here has no netem, so every public port of a daemon is
//     reached through a relay (relay.go) in the listener's namespace: the daemon listens on its
//     namespace's loopback, the relay on the host's 10.50.0.x address, and the relay holds every
//     chunk of bytes for the link's one-way delay, plus or minus the jitter, in each direction,
//     keeping the order of the stream. What it does not emulate: per-packet reordering, delay of
//     TCP's own handshake and ACKs (the TCP connection to the relay is local), bandwidth limits.
//   - loss: the kernel's own, an iptables rule (statistic match) in each namespace that drops
//     each packet arriving from the bridge with the given probability, so TCP retransmits as it
//     would on a lossy path (with the relay's local RTT, after its 200 ms minimum RTO).
//   - partition: iptables rules that drop everything a namespace sends or receives on its
//     bridge interface, for as long as the partition lasts; connections stall as they would
//     behind a broken router and recover when it heals, unless a timeout ended them.
//   - crash: SIGKILL to a daemon's process, and a restart from the same configuration and data.
//
// Namespaces are named "pnx<pid>x<token>-<host>", so parallel runs never collide and Sweep
// removes those whose owning process is gone. Everything needs root; the tests skip without it
// (and fail under CI, which runs as root).
package netlab
