package main

import (
	"testing"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/config"
)

// Without cert_file, the self-signed certificate names the loopback addresses IMAP listens on
// as well as the domains: a client given 127.0.0.1 checks the certificate for 127.0.0.1.
func TestSelfSignedNamesListenAddresses(t *testing.T) {
	c := config.Default()
	c.DataDir = t.TempDir()
	c.Provider.Domains = []string{"alpha.localhost"}
	c.IMAP.ListenAddress, c.IMAP.TLSListenAddress = "127.0.0.1:1143", "0.0.0.0:1993"
	tc, err := imapTLS(&c)
	if err != nil {
		t.Fatal(err)
	}
	leaf := tc.Certificates[0].Leaf
	for _, name := range []string{"alpha.localhost", "localhost", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := leaf.VerifyHostname("0.0.0.0"); err == nil {
		t.Error("the certificate names the wildcard address")
	}
}
