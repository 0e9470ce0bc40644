// Package keys owns the long-term and epoch key material of PANORAMIX nodes
// and clients: one distinct fixed-size Go type per role, so that a key made
// for one role cannot be passed where another is wanted.
//
//   - IdentityPrivateKey / IdentityPublicKey: Ed25519. A node's identity
//     public key is its node ID (the next-hop ID in Sphinx and the node key in
//     the consensus); it signs node descriptors and consensus documents.
//   - LinkPrivateKey / LinkPublicKey: Ed25519, the key of a TLS 1.3 link
//     certificate (see DESIGN.md section 5). Signer returns a crypto.Signer
//     for crypto/tls and crypto/x509.
//   - SphinxPrivateKey / SphinxPublicKey: X25519 per-epoch mix key used by
//     pkg/sphinx (DESIGN.md section 4).
//
// # Comparison and wiping
//
// Every key type has a constant-time Equal. Every private key has Wipe, which
// zeroes all secret bytes the key holds. A wiped key is dead: Sign, Public,
// Scalar and the methods of a Signer obtained from it panic (Signer.Sign
// returns an error instead, as its interface allows), and Equal reports false.
// Panicking is deliberate: using a wiped key is a programming error, and a
// silent zero key or empty signature could end up on the wire. The zero value
// of a private key type behaves like a wiped key. Private keys are safe for
// concurrent use except Wipe, which must happen after all other use. Private
// key types print as REDACTED with every fmt verb. Constructors refuse an
// all-zero seed or scalar: no working random source yields one, while an
// uninitialised buffer does. Wipe cannot
// reach copies made inside the standard library (crypto/ed25519 expands the
// seed on every signature; crypto/ecdh keeps a copy of the scalar while the
// public key is derived); those are garbage the runtime frees.
//
// # Text form
//
// Public keys are written as exactly 64 lowercase hexadecimal characters
// (String, MarshalText). Parsing is strict so that every accepted string
// re-encodes to the identical string: uppercase hex, whitespace, a "0x"
// prefix or any other length is refused with an error that says why.
// MarshalText and UnmarshalText make the types usable in JSON and TOML. The
// zero value of a public key type means "no key": it marshals to 64 zeros,
// which parsing refuses, so optional keys should be skipped with IsZero (for
// example with the omitzero JSON option). Verify refuses every key that
// parsing would refuse, even one built by converting a raw array.
//
// Parsing also rejects keys that are not usable for their role: an Ed25519
// public key must be the canonical encoding of a curve point that is not of
// small order (the all-zero key is one such point); an X25519 public key must
// be canonical (less than 2^255-19, which every X25519 output is) and not a
// low-order point. crypto/ecdh itself accepts any 32 bytes as an X25519 public
// key and only fails later, at ECDH time, when the shared secret is all zero;
// rejecting at parse time gives the operator a clear error instead.
//
// # Files
//
// Keys are stored one per file as PEM with a block type per role, for example
// "PANORAMIX IDENTITY PRIVATE KEY" and "PANORAMIX IDENTITY PUBLIC KEY"; the
// block holds the 32-byte seed (Ed25519), scalar (X25519) or public key. Save
// functions write atomically (temporary file in the same directory, fsync,
// rename, fsync of the directory) and replace any existing file; private keys
// get mode 0600 and public keys 0644. Load functions refuse, with an error
// that names the path: a private key file that group or others may read or
// write, a file larger than MaxFileSize, content that is not exactly one PEM
// block in the canonical form written by Save (no headers, no leading or
// trailing data), a block of the wrong type or length, and invalid key bytes.
package keys
