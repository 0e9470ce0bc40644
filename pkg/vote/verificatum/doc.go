// Package verificatum reads, verifies and writes Verificatum (VMN 3.1.0) proofs of shuffle over
// P-256, so that mixing done by pkg/vote can be checked by Verificatum's stand-alone verifier
// vmnv and Verificatum's mixing by ours (docs/spec/vote.md §3 to §6).
//
// It owns the SHA-256 PRG and random oracle (§3), the session prefix ρ and the independent
// generators (§4), the Terelius-Wikström proof of shuffle, prover and verifier (§5), and the
// layout of a proof directory (§6). Every file of a directory is outside input: each is read
// with a size limit and parsed strictly.
package verificatum
