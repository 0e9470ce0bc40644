// Package plugin runs provider services out of process (docs/spec/plugin.md): each configured
// plugin is a child process that speaks length-prefixed, versioned frames on its standard input
// and output, and a Plugin is the pkg/service.Service that hands it one-fragment requests and
// turns its answers into ACKs through the requests' SURBs.
//
// The package owns the plugin's process and everything that can go wrong with it: a plugin that
// crashes, hangs, floods or answers nonsense is killed and restarted with backoff, its requests
// in flight go unanswered (their senders retransmit), and neither mixd's packet path nor any
// other service waits for it: Deliver never blocks, over max_in_flight it refuses.
package plugin
