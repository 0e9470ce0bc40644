// Package node is mixd's core: it keeps the node's identity, link and per-epoch Sphinx keys,
// publishes its descriptor to the directory every epoch, follows the consensus, accepts links,
// unwraps packets (replay check against the persisted filter of the epoch key), holds each
// packet for the delay it carries in one timer heap, forwards it to the next hop, and on a
// provider delivers final-hop payloads to user queues and services (docs/spec/services.md).
// Mixes also send their own loop cover traffic at lambda_M.
package node
