package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// TestExampleConfigs loads every configs/directory*.toml.
func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob("../../../configs/directory*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d example configs, want at least 2", len(files))
	}
	for _, f := range files {
		c, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		p, _ := c.PKIParameters()
		if !p.Equal(pki.DefaultParameters()) {
			t.Errorf("%s: parameters %+v differ from the defaults", f, p)
		}
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "d.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAndRelativePaths(t *testing.T) {
	p := writeConfig(t, "version = 1\n")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if c.ListenAddress != d.ListenAddress || c.Threshold != 1 || c.Parameters != d.Parameters {
		t.Errorf("defaults not applied: %+v", c)
	}
	if want := filepath.Join(filepath.Dir(p), "authority.key"); c.IdentityKeyFile != want {
		t.Errorf("identity_key_file = %q, want %q", c.IdentityKeyFile, want)
	}
	if want := filepath.Join(filepath.Dir(p), "directory-data", "admin.token"); c.AdminTokenPath() != want {
		t.Errorf("admin token file %q, want %q by default", c.AdminTokenPath(), want)
	}
	if c, err = Load(writeConfig(t, "version = 1\nadmin_token_file = \"tok\"\n")); err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(c.AdminTokenPath()) || filepath.Base(c.AdminTokenPath()) != "tok" {
		t.Errorf("relative admin_token_file: %q", c.AdminTokenPath())
	}
}

func TestEnvironmentOverride(t *testing.T) {
	t.Setenv("PANORAMIX_DIRECTORY_LISTEN_ADDRESS", "127.0.0.1:9999")
	t.Setenv("PANORAMIX_DIRECTORY_PARAMETERS_EPOCH_LENGTH", "5s")
	t.Setenv("PANORAMIX_DIRECTORY_PARAMETERS_LAMBDA_P", "3.5")
	c, err := Load(writeConfig(t, "version = 1\nlisten_address = \"127.0.0.1:1\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddress != "127.0.0.1:9999" || c.Parameters.EpochLength != 5*time.Second || c.Parameters.LambdaP != 3.5 {
		t.Errorf("environment not applied: %+v", c)
	}
}

func TestRefuses(t *testing.T) {
	const peer = "59ff4a672cf16317667933ea4323b2b2da3d3a38a4689204e118e313c6b8df07"
	for _, tc := range []struct {
		body, want string
	}{
		{"version = 1\nlisten_adress = \"x:1\"\n", "listen_adress"},
		{"version = 1\n[parameters]\nlambda_x = 1.0\n", "lambda_x"},
		{"version = 1\n[[peers]]\nidentity = \"" + peer + "\"\nurl = \"http://a:1\"\nport = 3\n", "port"},
		{"version = 2\n", "version"},
		{"threshold = 1\n", "version = 0"},
		{"version = 1\nadmin_address = \"0.0.0.0:7001\"\n", "loopback"},
		{"version = 1\nthreshold = 2\n", "threshold"},
		{"version = 1\napproved = [\"zz\"]\n", "approved[0]"},
		{"version = 1\n[parameters]\nlambda_p = 0.0\n", "lambda_p"},
		{"version = 1\n[parameters]\nepoch_length = \"10ms\"\n", "epoch length"},
		{"version = 1\nlog_level = \"loud\"\n", "log_level"},
		{"version = 1\n[[peers]]\nidentity = \"" + peer + "\"\nurl = \"ftp://a\"\n", "peers[0].url"},
		{"version = 1\n[[peers]]\nidentity = \"" + peer + "\"\nurl = \"http://a:1\"\n[[peers]]\nidentity = \"" + peer + "\"\nurl = \"http://b:1\"\n", "repeats"},
		{"version = 1\nthreshold = \"x\"\n", "threshold"},
		{"version = 1\n[parameters\n", "toml"},
	} {
		_, err := Load(writeConfig(t, tc.body))
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
			t.Errorf("%q: err = %v, want mention of %q", tc.body, err, tc.want)
		}
	}
}
