// Package provider holds what only a provider node has: its user database (users, their link
// keys and quotas), the per-user queues that clients fetch ACKs, loop returns and replies from,
// the mail queues that clients reading their mail through the link fetch sealed mail from
// (docs/spec/services.md section 6, wire.md section 7.1), the dispatch of final-hop payloads to services (docs/spec/services.md), and the admin API that
// `mixctl user` talks to. Everything a client was promised is in bbolt, committed with fsync,
// before the provider acts on it.
package provider
