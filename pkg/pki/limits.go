package pki

// Hard limits on attacker-controlled sizes (docs/spec/pki.md section 2).
const (
	// MaxDescriptorSize bounds an encoded descriptor and a descriptor upload body.
	MaxDescriptorSize = 16384
	// MaxDocumentSize bounds an encoded signed document or vote and any HTTP body a client or
	// peer authority reads.
	MaxDocumentSize = 4 << 20
	// MaxNodes bounds the nodes in a document and the descriptors in a vote.
	MaxNodes = 4096
	// MaxAddresses bounds a node's addresses (at least one is required).
	MaxAddresses = 8
	// MaxDomains bounds a provider's mail domains.
	MaxDomains = 32
	// MaxServices bounds a provider's services.
	MaxServices = 16
	// MaxSphinxKeys bounds the Sphinx keys in one descriptor (at least one is required).
	MaxSphinxKeys = 4
	// MaxSignatures bounds the authority signatures on a document.
	MaxSignatures = 32
	// maxServiceLen and maxDomainLen bound single names; addresses are bounded by str (255).
	maxServiceLen = 32
	maxDomainLen  = 253
)

// Layers is the number of mix layers (DESIGN.md section 1).
const Layers = 3

// Version is the only encoding version this package reads and writes.
const Version = 1

// Signing contexts (docs/spec/pki.md sections 4-7): each signed or hashed structure has its own,
// so a signature on one kind of object can never be taken for another.
const (
	contextDescriptor = "panoramix-pki-v1-descriptor"
	contextVote       = "panoramix-pki-v1-vote"
	contextDocument   = "panoramix-pki-v1-document"
	contextLayer      = "panoramix-pki-v1-layer"
)

// signedMessage returns context || 0x00 || body, the bytes an Ed25519 signature covers.
func signedMessage(context string, body []byte) []byte {
	m := make([]byte, 0, len(context)+1+len(body))
	m = append(m, context...)
	m = append(m, 0)
	return append(m, body...)
}
