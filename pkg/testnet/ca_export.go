package testnet

// EnsureCA loads the CA kept in dir, or makes it there: for networks that are laid out
// elsewhere (internal/netlab) but issue certificates the same way.
func EnsureCA(dir string) (*CA, error) { return ensureCA(dir) }

// Issue writes a server certificate for names and the hosts of addrs (host:port) into certFile
// and keyFile, unless one from this CA already covers them (see issue).
func (ca *CA) Issue(certFile, keyFile string, names, addrs []string) error {
	return ca.issue(certFile, keyFile, names, addrs)
}
