// Package entropy computes the sender entropy of delivered messages from a stream of events that
// say where every packet went (ground truth): the measure of sender anonymity of Loopix
// (Piotrowska, Hayes, Elahi, Meiser, Danezis: "The Loopix Anonymity System", USENIX Security
// 2017, section 4 "Analysis", sender-receiver unlinkability measured as the Shannon entropy of the
// adversary's distribution over the possible senders of a message). The simulator
// (internal/privacy/sim) and the capture of the real testnet (internal/privacy/capture) both feed
// it, with the same event types.
//
// # Events
//
// A packet is a value of [PacketID]; ids are opaque (a packet changes its bytes, and so its id,
// at every hop). [Send]: a packet leaves a client (a user) for its provider. [Receive]: a node
// takes in a packet, from a client link or from another node. [Emit]: a node sends out packet Out,
// which was its input In (the mapping only the ground truth knows), or which it made itself (a
// mix's loop, lambda_M). [Deliver]: a packet ends at a node (a final hop: a real message stored
// for its recipient, a drop, a loop or an acknowledgement coming back, a mix's loop coming home),
// possibly answered at once by a reply packet through its SURB. Events are applied in time order.
//
// # The adversary and its estimate
//
// The adversary is a global passive observer: it sees every link, so it knows when each node
// takes in and sends out a packet, and from which client a packet came, but not which input
// became which output. Every node holds each packet for an exponential delay (docs/spec/pki.md
// section 3), which is memoryless: whatever a packet's age, it leaves in the next instant with
// the same probability as any other packet inside. So when a node sends a packet at time t, the
// adversary's best estimate is the pool model: the output is each packet inside the node at t
// (taken in and not yet sent) with equal probability. Each packet thus carries a probability
// distribution over senders:
//
//   - a packet leaving a client carries certainty: its user;
//   - a packet leaving a node carries the average of the distributions of the packets inside the
//     node at that moment (the one that leaves included). The ground truth tells which packet
//     left, so its own distribution is taken out of the node and the true path is followed;
//   - a mix also makes packets (its loops, at rate lambda_M). An output of a mix is then a new
//     loop with hazard lambda_M and each packet inside with hazard mu = 1/mean delay, so the
//     output's distribution is (sum of the k distributions inside + w * mix) / (k + w) with
//     w = lambda_M / mu ([Config.Made]): the mix itself is a possible sender;
//   - a delivered real message's sender entropy is the Shannon entropy, in bits, of its
//     distribution at delivery, over users only (the adversary knows a real message is sent by
//     a user, so the mass on mixes is removed and the rest renormalized).
//
// Cover packets of users (drops, loops), loops of mixes, acknowledgements and loop echoes all
// take part in the pools. The one refinement of the plain pool: a provider's inputs are of two
// kinds the adversary tells apart by their link, packets from its own clients (first hops, which
// always go on to a mix) and packets from mixes (final hops). A delivery can only be a final
// hop, so a delivered message's distribution is the average over the packets from mixes inside
// the provider; a provider's output to a mix may be either kind (a client's packet, or the reply
// of a final hop) and averages over both.
//
// # Assumptions
//
//   - Delays are exponential and memoryless. Senders cap them at max_delay (P = e^-15 at the
//     defaults) and round them to milliseconds: the model ignores both.
//   - The adversary learns the moment a message is delivered (from the recipient's retrievals,
//     for example) but nothing inside a node; no node is corrupt; links add no delay.
//   - The adversary uses no route constraints beyond the provider's two kinds (for example that
//     a mix's loop never reaches a provider); a stronger adversary that does can do somewhat
//     better, so the entropies are upper bounds for such an adversary, exact for the pool one.
//   - One real message is one packet (fragments of a long message are linkable by timing and are
//     not modelled).
//
// Distributions are sparse (index and probability pairs); mass below [Config.Prune] (default
// 1e-9) is dropped and the rest renormalized. A node's pool keeps a dense running sum of its
// packets' distributions with a count per sender, so an output costs one pass over the senders
// present in the node.
//
// [Backward] gives the same measures from the same events with memory linear in the events, for
// networks whose distributions the [Tracker] cannot hold (100,000 users): it records the events
// and carries each delivered message's mass back through them, the model being linear.
package entropy
