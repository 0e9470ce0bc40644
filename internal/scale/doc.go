// Package scale measures what one provider costs per online user (issue 17): Run starts a
// pkg/testnet network with one provider, runs many client engines in this process against it
// at the consensus's lambdas, and samples, over a measurement window, the CPU time and memory
// of every mixd process (from /proc), the packets each received (its /metrics), and the
// engines' own counters (loops sent, returned and lost, retrieves). The command
// internal/scale/cmd/providerload runs it for several user counts; docs/BENCHMARKS.md ("One
// provider, many users") holds its figures, and package capacity turns measured per-packet
// costs into the size of a network.
//
// Nothing here runs in make test: a run takes minutes and all of the machine.
package scale
