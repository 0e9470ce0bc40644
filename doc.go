// Package panoramix is the root of the PANORAMIX mail repository: a mix network that carries
// email, votes and survey data in fixed-size Sphinx packets with cover traffic, so that observers
// of the network and its servers cannot tell who writes to whom (see README.md and, for the
// design, DESIGN.md).
//
// The programs live in their own directories (mailproxy, postfix-filter, mixd, directory, mixctl)
// and the libraries they share under pkg/. This root package holds no code that ships: only the
// repository-wide hygiene tests in hygiene_test.go, which hold every package to the project's
// rules (gofmt, package documentation, one-way dependencies from daemons to pkg/, no network or
// logging in pkg/sphinx, a tidy go.mod).
package panoramix
