// Package sphinx implements the PANORAMIX Sphinx packet format, version 1, as written in
// docs/spec/sphinx.md: packet creation for routes of 1 to Geometry.Hops hops with per-hop delay
// commands, one-hop unwrapping with header MAC and replay tag, final-hop delivery with the
// payload's zero-tag check, and single-use reply blocks (SURBs).
//
// The package owns the byte formats and the cryptography of packets. It does no I/O and no
// logging (a hygiene test enforces that it does not link net or log); replay filtering, delays
// and forwarding belong to the mix (mixd), which is why Unwrap returns the replay tag and the
// delay instead of acting on them.
//
// Comments cite the spec's sections as §n.
package sphinx
