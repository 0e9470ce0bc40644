package pki

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// DirectorySection is the [directory] table shared by the configurations of every program that
// follows the consensus (mixd, mailproxy, postfix-filter): where documents come from and whom to
// trust. The mapstructure tags are the TOML key names; each program's strict loader decodes it.
type DirectorySection struct {
	// URLs are authority base URLs.
	URLs []string `mapstructure:"urls"`
	// Authorities are the authorities' identity keys in hex.
	Authorities []string `mapstructure:"authorities"`
	// Threshold is how many of them must sign a document.
	Threshold int `mapstructure:"threshold"`
	// EpochLength must equal the network's.
	EpochLength time.Duration `mapstructure:"epoch_length"`
}

// Validate checks the section; errors name the key.
func (d *DirectorySection) Validate() error {
	if len(d.URLs) == 0 {
		return errors.New("[directory] urls is empty")
	}
	for i, u := range d.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("[directory] urls[%d] = %q: want http://host:port", i, u)
		}
	}
	auth, err := d.AuthorityKeys()
	if err != nil {
		return err
	}
	if err := CheckAuthorities(auth, d.Threshold); err != nil {
		return fmt.Errorf("[directory] authorities/threshold: %w", err)
	}
	if _, err := NewClock(d.EpochLength); err != nil {
		return fmt.Errorf("[directory] epoch_length: %w", err)
	}
	return nil
}

// AuthorityKeys parses the authorities.
func (d *DirectorySection) AuthorityKeys() ([]keys.IdentityPublicKey, error) {
	if len(d.Authorities) == 0 {
		return nil, errors.New("[directory] authorities is empty: add the authority identity keys (mixctl dir keygen prints them; a provider publishes its network's)")
	}
	var out []keys.IdentityPublicKey
	for i, s := range d.Authorities {
		k, err := keys.ParseIdentityPublicKey(s)
		if err != nil {
			return nil, fmt.Errorf("[directory] authorities[%d]: %w", i, err)
		}
		out = append(out, k)
	}
	return out, nil
}

// ClientConfig is the consensus client configuration the section describes.
func (d *DirectorySection) ClientConfig(log *slog.Logger) (ClientConfig, error) {
	auth, err := d.AuthorityKeys()
	if err != nil {
		return ClientConfig{}, err
	}
	return ClientConfig{URLs: d.URLs, Authorities: auth, Threshold: d.Threshold, EpochLength: d.EpochLength, Logger: log}, nil
}
