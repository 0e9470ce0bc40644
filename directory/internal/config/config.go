// Package config reads the directory authority's TOML configuration strictly: an unknown key is
// an error naming it, the version must be known, defaults come from Default, and every scalar key
// can be overridden from the environment as PANORAMIX_DIRECTORY_<KEY> (nested keys joined by
// "_", for example PANORAMIX_DIRECTORY_PARAMETERS_LAMBDA_P).
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/internal/boot"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// Version is the configuration format version this package reads.
const Version = 1

// EnvPrefix prefixes environment overrides.
const EnvPrefix = "PANORAMIX_DIRECTORY"

// Config is the directory authority's configuration.
type Config struct {
	Version int `mapstructure:"version"`
	// IdentityKeyFile holds this authority's Ed25519 identity key (mixctl dir keygen writes it).
	IdentityKeyFile string `mapstructure:"identity_key_file"`
	// DataDir holds the bbolt store.
	DataDir string `mapstructure:"data_dir"`
	// ListenAddress is the public HTTP API's host:port.
	ListenAddress string `mapstructure:"listen_address"`
	// AdminAddress is the admin API's host:port; it must be a loopback address.
	AdminAddress string `mapstructure:"admin_address"`
	// AdminTokenFile holds the admin API's bearer token (mode 0600, created at first start if
	// missing; mixctl dir --admin-token reads it); empty means data_dir/admin.token.
	AdminTokenFile string `mapstructure:"admin_token_file"`
	// Threshold is how many authority signatures a document needs.
	Threshold int `mapstructure:"threshold"`
	// Approved lists the identity keys of mixes approved in the file, in addition to those
	// approved with mixctl dir approve (approvals.go).
	Approved []string `mapstructure:"approved"`
	// ApprovedProviders are providers approved in the file, each with its mail domains.
	ApprovedProviders []ApprovedProvider `mapstructure:"approved_providers"`
	// LogLevel is debug, info, warn or error.
	LogLevel   string     `mapstructure:"log_level"`
	Parameters Parameters `mapstructure:"parameters"`
	// Peers are the other authorities.
	Peers []Peer `mapstructure:"peers"`
}

// Parameters are the consensus parameters (docs/spec/pki.md section 3). Every authority must
// configure the same values or no document is made.
type Parameters struct {
	EpochLength time.Duration `mapstructure:"epoch_length"`
	Hops        int           `mapstructure:"hops"`
	PayloadSize int           `mapstructure:"payload_size"`
	LambdaP     float64       `mapstructure:"lambda_p"`
	LambdaL     float64       `mapstructure:"lambda_l"`
	LambdaD     float64       `mapstructure:"lambda_d"`
	LambdaM     float64       `mapstructure:"lambda_m"`
	MeanDelay   time.Duration `mapstructure:"mean_delay"`
	MaxDelay    time.Duration `mapstructure:"max_delay"`
}

// Peer is another authority.
type Peer struct {
	// Identity is its identity public key in hex.
	Identity string `mapstructure:"identity"`
	// URL is its public API base URL, for example http://192.0.2.10:7000.
	URL string `mapstructure:"url"`
}

// Default returns the defaults: a single authority (the embedded default) on loopback with the
// consensus defaults of pki.DefaultParameters.
func Default() Config {
	p := pki.DefaultParameters()
	return Config{
		Version:         Version,
		IdentityKeyFile: "authority.key",
		DataDir:         "directory-data",
		ListenAddress:   "127.0.0.1:7000",
		AdminAddress:    "127.0.0.1:7001",
		Threshold:       1,
		LogLevel:        "info",
		Parameters: Parameters{
			EpochLength: p.EpochLength,
			Hops:        p.Geometry.Hops,
			PayloadSize: p.Geometry.PayloadSize,
			LambdaP:     p.LambdaP,
			LambdaL:     p.LambdaL,
			LambdaD:     p.LambdaD,
			LambdaM:     p.LambdaM,
			MeanDelay:   p.MeanDelay,
			MaxDelay:    p.MaxDelay,
		},
	}
}

// Load reads the file at path, applies defaults and environment overrides, resolves relative
// paths against the file's directory, and validates the result.
func Load(path string) (*Config, error) {
	var c Config
	if err := boot.LoadTOML(path, EnvPrefix, defaults(Default()), &c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := boot.ResolvePaths(path, &c.IdentityKeyFile, &c.DataDir, &c.AdminTokenFile); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

// defaults lists every scalar key with its default, which also lets an environment variable
// override it. version has no default: a file must say which format it is in.
func defaults(d Config) map[string]any {
	p := d.Parameters
	return map[string]any{
		"identity_key_file": d.IdentityKeyFile, "data_dir": d.DataDir, "listen_address": d.ListenAddress,
		"admin_address": d.AdminAddress, "admin_token_file": d.AdminTokenFile, "threshold": d.Threshold, "log_level": d.LogLevel,
		"parameters.epoch_length": p.EpochLength, "parameters.hops": p.Hops,
		"parameters.payload_size": p.PayloadSize, "parameters.lambda_p": p.LambdaP,
		"parameters.lambda_l": p.LambdaL, "parameters.lambda_d": p.LambdaD,
		"parameters.lambda_m": p.LambdaM, "parameters.mean_delay": p.MeanDelay,
		"parameters.max_delay": p.MaxDelay,
	}
}

// Validate checks every field; errors name the key.
func (c *Config) Validate() error {
	if c.Version != Version {
		return fmt.Errorf("version = %d: this program reads version %d (a file must set it)", c.Version, Version)
	}
	if c.IdentityKeyFile == "" {
		return errors.New("identity_key_file is empty: create a key with `mixctl dir keygen` and name it here")
	}
	if c.DataDir == "" {
		return errors.New("data_dir is empty")
	}
	if _, _, err := net.SplitHostPort(c.ListenAddress); err != nil {
		return fmt.Errorf("listen_address %q: %w", c.ListenAddress, err)
	}
	if err := boot.CheckLoopback(c.AdminAddress, "the admin API is for the operator on this machine"); err != nil {
		return fmt.Errorf("admin_address: %w", err)
	}
	if _, err := c.LogLevelValue(); err != nil {
		return err
	}
	if _, err := c.Approvals(); err != nil {
		return err
	}
	if _, err := c.PKIParameters(); err != nil {
		return err
	}
	peers, err := c.PeerList()
	if err != nil {
		return err
	}
	if n := len(peers) + 1; c.Threshold < 1 || c.Threshold > n {
		return fmt.Errorf("threshold = %d: must be between 1 and the number of authorities (%d: this one and %d peers)", c.Threshold, n, len(peers))
	}
	return nil
}

// AdminTokenPath is the admin API's token file.
func (c *Config) AdminTokenPath() string {
	if c.AdminTokenFile != "" {
		return c.AdminTokenFile
	}
	return filepath.Join(c.DataDir, adminauth.DefaultFile)
}

// LogLevelValue returns log_level as a slog.Level.
func (c *Config) LogLevelValue() (slog.Level, error) {
	return boot.ParseLogLevel(c.LogLevel)
}

// PKIParameters converts and validates the parameters table.
func (c *Config) PKIParameters() (pki.Parameters, error) {
	p := c.Parameters
	out := pki.Parameters{
		Geometry:    sphinx.Geometry{Hops: p.Hops, PayloadSize: p.PayloadSize},
		LambdaP:     p.LambdaP,
		LambdaL:     p.LambdaL,
		LambdaD:     p.LambdaD,
		LambdaM:     p.LambdaM,
		MeanDelay:   p.MeanDelay,
		MaxDelay:    p.MaxDelay,
		EpochLength: p.EpochLength,
	}
	if err := out.Validate(); err != nil {
		return out, fmt.Errorf("[parameters]: %w", err)
	}
	return out, nil
}

// PeerAuthority is a parsed peer.
type PeerAuthority struct {
	Identity keys.IdentityPublicKey
	URL      string
}

// PeerList parses peers; identities must be distinct.
func (c *Config) PeerList() ([]PeerAuthority, error) {
	var out []PeerAuthority
	for i, p := range c.Peers {
		k, err := keys.ParseIdentityPublicKey(p.Identity)
		if err != nil {
			return nil, fmt.Errorf("peers[%d].identity: %w", i, err)
		}
		u, err := url.Parse(p.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("peers[%d].url = %q: want http://host:port or https://host:port", i, p.URL)
		}
		for j, o := range out {
			if o.Identity.Equal(k) {
				return nil, fmt.Errorf("peers[%d].identity repeats peers[%d]", i, j)
			}
		}
		out = append(out, PeerAuthority{Identity: k, URL: strings.TrimRight(p.URL, "/")})
	}
	return out, nil
}
