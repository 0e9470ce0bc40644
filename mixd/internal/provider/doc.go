// Package provider holds what only a provider node has: its user database (users, their link
// keys and quotas), the per-user queues that clients fetch ACKs, loop returns and replies from,
// the dispatch of final-hop payloads to services (docs/spec/services.md), and the admin API that
// `mixctl user` talks to. Everything a client was promised is in bbolt, committed with fsync,
// before the provider acts on it.
package provider
