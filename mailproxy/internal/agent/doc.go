// Package agent is mailproxy's local agent API (docs/spec/agent.md): an HTTP/JSON API on a
// loopback listener through which programs of the user's own (a script, a Node client, a
// plugin's counterpart) use the user's client engine without speaking Sphinx: list the
// services the consensus offers, send a payload to a service at a provider, watch its delivery
// status and read the service's answer, and receive messages sent to the user's queue with
// at-least-once delivery and acknowledgement.
//
// The package owns the HTTP side only: request decoding and its limits (body size, payload
// size, requests in flight, long-polls waiting, connections), the mapping of engine errors to
// HTTP statuses, and the server's timeouts. Authentication is internal/adminauth's (loopback
// Host, bearer token from a 0600 file, JSON bodies only). Durability is the engine's: a send is
// answered only after Engine.SendOnce returned, which is after its commit and fsync
// (docs/spec/client.md section 5).
//
// It runs inside mailproxy rather than as a daemon beside it: the engine's store is one bbolt
// file that a single process may open, and a second engine for the same user would be a second
// link with its own cover traffic, which an observer of the link could tell apart
// (docs/spec/agent.md section 1).
package agent
