// Package pki owns the directory's data model: epochs, node descriptors, authority votes and the
// signed consensus document, with one canonical binary encoding each, and the client that fetches
// and verifies documents. docs/spec/pki.md is the specification; comments cite its sections.
//
// Everything here is a pure function of its inputs except Client, which does HTTP. The directory
// daemon (directory/) stores, schedules and serves what this package computes; ComputeDocument is
// the deterministic rule every authority applies to the same votes to get the same bytes.
package pki
