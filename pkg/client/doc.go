// Package client is the client engine shared by mailproxy, postfix-filter and the vote and
// survey clients (DESIGN.md sections 3 and 8). It owns everything between "send these bytes
// to that recipient" and the user's link to its provider:
//
//   - consensus: documents come from a pki.Client (fetched and verified there); the engine
//     reads routes, keys, rates and delays from the current one.
//   - fragmenting: Send cuts a message into fragments (docs/spec/fragment.md) that fit one
//     Sphinx payload each, inside a service envelope (docs/spec/services.md).
//   - routes: every packet goes the user's provider, one mix per layer, the destination
//     provider, with an exponential delay per hop (mean and cap from the consensus); every
//     fragment carries a SURB-ACK back through one mix per layer to the user's provider.
//   - cover traffic: the scheduler writes one packet at every slot of a fixed period
//     1/(lambda_P + lambda_L + lambda_D), each slot drawn as a send slot (the next fragment due,
//     else a drop packet), a loop or a drop in proportion to the rates; every frame on the link
//     has the same size, so an observer of the link cannot tell real from cover, nor time a
//     delivery back to its sender's link.
//   - durability: the outgoing queue, the SURB reply keys and the retrieve position live in a
//     bbolt file; Send returns only once the message is committed, and a restarted engine
//     resumes where the last one stopped.
//   - retransmission: a fragment without ACK after its expected round trip plus slack is sent
//     again on a fresh route with a fresh SURB, under the same message id and index (receivers
//     deduplicate), until a retry budget is spent.
//   - delivery status per message: queued, sending (n of m acknowledged), delivered, sent (to
//     a service without acknowledgements), failed with a reason.
//   - receiving: fragments that arrive in the user's queue (service "queue") are reassembled,
//     deduplicated by (message id, index), into Received messages.
//   - mail through the link: with Config.ReadMail, the mail the provider holds for the user
//     comes in sealed chunks through retrieve-mail exchanges on the same fixed schedule, is
//     stored chunk by chunk, opened with the link key and handed to ReadMail exactly once
//     (docs/spec/client.md section 7.1).
//
// docs/spec/client.md describes the engine's behaviour and docs/spec/fragment.md the fragment
// and ack formats; comments cite their sections.
//
// Use: New(Config) opens the store; Run(ctx) keeps the link up and sends and retrieves until
// ctx ends; Send, Status, List, Forget, Received, DeleteReceived and LinkState may be called at
// any time; Close after Run has returned. The caller runs the pki.Client's own Run.
package client
