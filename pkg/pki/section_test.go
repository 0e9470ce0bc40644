package pki

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

func TestDirectorySection(t *testing.T) {
	k, _ := keys.GenerateIdentityKey(rand.Reader)
	good := DirectorySection{URLs: []string{"http://127.0.0.1:7000"}, Authorities: []string{k.Public().String()}, Threshold: 1, EpochLength: time.Minute}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if cc, err := good.ClientConfig(nil); err != nil || len(cc.Authorities) != 1 || cc.Authorities[0] != k.Public() {
		t.Fatalf("client config %+v, %v", cc, err)
	}
	for _, tc := range []struct {
		edit func(*DirectorySection)
		want string
	}{
		{func(d *DirectorySection) { d.URLs = nil }, "urls is empty"},
		{func(d *DirectorySection) { d.URLs = []string{"ftp://x"} }, "urls[0]"},
		{func(d *DirectorySection) { d.Authorities = nil }, "authorities is empty"},
		{func(d *DirectorySection) { d.Authorities = []string{"zz"} }, "authorities[0]"},
		{func(d *DirectorySection) { d.Threshold = 2 }, "threshold"},
		{func(d *DirectorySection) { d.EpochLength = 0 }, "epoch_length"},
	} {
		d := good
		tc.edit(&d)
		if err := d.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error naming %q, got %v", tc.want, err)
		}
	}
}
