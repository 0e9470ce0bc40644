// Package config reads postfix-filter's TOML configuration strictly: an unknown key is an error
// naming it, the version must be known, defaults come from Default, and every scalar key can be
// overridden from the environment as PANORAMIX_POSTFIX_FILTER_<KEY> (nested keys joined by "_",
// for example PANORAMIX_POSTFIX_FILTER_ACCOUNT_USER).
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/boot"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

// Version is the configuration format version this package reads.
const Version = 1

// EnvPrefix prefixes environment overrides.
const EnvPrefix = "PANORAMIX_POSTFIX_FILTER"

// Hard limits on the settings that bound what a peer can make the filter hold.
const (
	MaxMessageSizeLimit = 1 << 30
	MaxRecipientsLimit  = 10000
	MaxConnectionsLimit = 10000
)

// Config is postfix-filter's configuration.
type Config struct {
	Version int `mapstructure:"version"`
	// DataDir holds the client engine's store and the record of messages already passed on.
	DataDir string `mapstructure:"data_dir"`
	// ListenAddress is where Postfix hands mail to the filter (its content_filter next hop).
	ListenAddress string `mapstructure:"listen_address"`
	// ReinjectAddress is Postfix's second smtpd, which takes mail back without filtering.
	ReinjectAddress string `mapstructure:"reinject_address"`
	// Hostname is the name the filter gives in its greeting and in EHLO to the re-injection
	// smtpd.
	Hostname string `mapstructure:"hostname"`
	// MetricsAddress serves /metrics (Prometheus); empty disables it.
	MetricsAddress string `mapstructure:"metrics_address"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `mapstructure:"log_level"`
	// MaxMessageSize bounds one message in bytes; larger ones are refused with 552 (match
	// Postfix's message_size_limit).
	MaxMessageSize int `mapstructure:"max_message_size"`
	// MaxRecipients bounds the recipients of one transaction.
	MaxRecipients int `mapstructure:"max_recipients"`
	// MaxConnections bounds concurrent connections; further ones get 421 and are closed.
	MaxConnections int `mapstructure:"max_connections"`
	// Timeout bounds each read and write on a connection, in and out.
	Timeout time.Duration `mapstructure:"timeout"`
	// ConsensusTimeout bounds the wait for a consensus document while a message waits; when
	// it passes the message gets 4xx.
	ConsensusTimeout time.Duration `mapstructure:"consensus_timeout"`
	// RequireLink answers 4xx to mixable mail while the link to the provider is down, so that
	// Postfix keeps it; with false such mail is queued in the engine and leaves when the link
	// comes back.
	RequireLink bool `mapstructure:"require_link"`
	// DedupRetention is how long a message passed on is remembered, so that a retry of it is
	// not sent twice; at least Postfix's maximal_queue_lifetime.
	DedupRetention time.Duration `mapstructure:"dedup_retention"`
	Account        Account       `mapstructure:"account"`
	Directory      Directory     `mapstructure:"directory"`
	Engine         Engine        `mapstructure:"engine"`
}

// Account is the filter's own account at its provider: mail enters the mixnet from it and its
// ACKs come back to its queue.
type Account struct {
	// User is the account's name at the provider (mixctl user add).
	User string `mapstructure:"user"`
	// Domain is the provider's mail domain, as in the consensus.
	Domain string `mapstructure:"domain"`
	// LinkKeyFile is the account's link private key (postfix-filter --gen-key writes it).
	LinkKeyFile string `mapstructure:"link_key_file"`
}

// Directory says where the consensus comes from and whom to trust.
type Directory = pki.DirectorySection

// Engine tunes the client engine (docs/spec/client.md section 8).
type Engine struct {
	RetryBudget      int           `mapstructure:"retry_budget"`
	AckSlack         time.Duration `mapstructure:"ack_slack"`
	RetrieveInterval time.Duration `mapstructure:"retrieve_interval"`
	// RetrieveBatch is the answers each retrieve exchange asks for, 1 to 16; 0 is the engine's
	// default (1) (docs/spec/client.md section 6).
	RetrieveBatch int `mapstructure:"retrieve_batch"`
}

// Default returns the defaults.
func Default() Config {
	return Config{
		Version:          Version,
		DataDir:          "postfix-filter-data",
		ListenAddress:    "127.0.0.1:10025",
		ReinjectAddress:  "127.0.0.1:10026",
		Hostname:         "localhost",
		LogLevel:         "info",
		MaxMessageSize:   10 << 20,
		MaxRecipients:    1000,
		MaxConnections:   100,
		Timeout:          5 * time.Minute,
		ConsensusTimeout: 10 * time.Second,
		RequireLink:      true,
		DedupRetention:   7 * 24 * time.Hour,
		Account:          Account{User: "postfix-filter", LinkKeyFile: "link.key"},
		Directory: Directory{
			URLs:        []string{"http://127.0.0.1:7000"},
			Threshold:   1,
			EpochLength: pki.DefaultParameters().EpochLength,
		},
		Engine: Engine{},
	}
}

// defaults flattens Default into viper keys; every key of Config is here, which is also what
// lets the environment override it.
func defaults() map[string]any {
	d := Default()
	return map[string]any{
		"version": d.Version, "data_dir": d.DataDir, "listen_address": d.ListenAddress,
		"reinject_address": d.ReinjectAddress, "hostname": d.Hostname, "log_level": d.LogLevel,
		"metrics_address":  d.MetricsAddress,
		"max_message_size": d.MaxMessageSize, "max_recipients": d.MaxRecipients,
		"max_connections": d.MaxConnections, "timeout": d.Timeout, "consensus_timeout": d.ConsensusTimeout,
		"require_link": d.RequireLink, "dedup_retention": d.DedupRetention,
		"account.user": d.Account.User, "account.domain": d.Account.Domain, "account.link_key_file": d.Account.LinkKeyFile,
		"directory.urls": d.Directory.URLs, "directory.authorities": d.Directory.Authorities,
		"directory.threshold": d.Directory.Threshold, "directory.epoch_length": d.Directory.EpochLength,
		"engine.retry_budget": d.Engine.RetryBudget, "engine.ack_slack": d.Engine.AckSlack,
		"engine.retrieve_interval": d.Engine.RetrieveInterval, "engine.retrieve_batch": d.Engine.RetrieveBatch,
	}
}

// Load reads the file at path, applies defaults and environment overrides, resolves relative
// paths against the file's directory, and validates the result.
func Load(path string) (*Config, error) {
	var c Config
	if err := boot.LoadTOML(path, EnvPrefix, defaults(), &c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := boot.ResolvePaths(path, &c.DataDir, &c.Account.LinkKeyFile); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

// Validate checks every field; errors name the key.
func (c *Config) Validate() error {
	if c.Version != Version {
		return fmt.Errorf("version = %d: this program reads version %d", c.Version, Version)
	}
	if c.DataDir == "" {
		return errors.New("data_dir is empty")
	}
	for key, a := range map[string]string{"listen_address": c.ListenAddress, "reinject_address": c.ReinjectAddress} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%s = %q: %w", key, a, err)
		}
	}
	if c.MetricsAddress != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddress); err != nil {
			return fmt.Errorf("metrics_address = %q: %w", c.MetricsAddress, err)
		}
	}
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " \t\r\n") {
		return fmt.Errorf("hostname = %q: want a host name", c.Hostname)
	}
	if _, err := c.LogLevelValue(); err != nil {
		return err
	}
	if c.MaxMessageSize < 1024 || c.MaxMessageSize > MaxMessageSizeLimit {
		return fmt.Errorf("max_message_size = %d: want 1024 to %d", c.MaxMessageSize, MaxMessageSizeLimit)
	}
	if c.MaxRecipients < 1 || c.MaxRecipients > MaxRecipientsLimit {
		return fmt.Errorf("max_recipients = %d: want 1 to %d", c.MaxRecipients, MaxRecipientsLimit)
	}
	if c.MaxConnections < 1 || c.MaxConnections > MaxConnectionsLimit {
		return fmt.Errorf("max_connections = %d: want 1 to %d", c.MaxConnections, MaxConnectionsLimit)
	}
	if c.Timeout < time.Second {
		return fmt.Errorf("timeout = %v: at least 1s", c.Timeout)
	}
	if c.ConsensusTimeout < 100*time.Millisecond {
		return fmt.Errorf("consensus_timeout = %v: at least 100ms", c.ConsensusTimeout)
	}
	if c.DedupRetention < time.Hour {
		return fmt.Errorf("dedup_retention = %v: at least 1h (Postfix retries for days)", c.DedupRetention)
	}
	a := c.Account
	if err := (sphinx.Recipient{Service: "queue", ID: a.User}).Validate(); err != nil {
		return fmt.Errorf("[account] user = %q: %w", a.User, err)
	}
	if a.Domain == "" || a.Domain != strings.ToLower(a.Domain) {
		return fmt.Errorf("[account] domain = %q: want the provider's lowercase mail domain", a.Domain)
	}
	if a.LinkKeyFile == "" {
		return errors.New("[account] link_key_file is empty")
	}
	if err := c.Directory.Validate(); err != nil {
		return err
	}
	e := c.Engine
	if e.RetryBudget < 0 || e.AckSlack < 0 || e.RetrieveInterval < 0 {
		return errors.New("[engine] retry_budget, ack_slack and retrieve_interval must not be negative (0 means the default)")
	}
	if e.RetrieveBatch < 0 || e.RetrieveBatch > wire.MaxRetrieveBatch {
		return fmt.Errorf("[engine] retrieve_batch = %d: want 0 (default, 1) to %d", e.RetrieveBatch, wire.MaxRetrieveBatch)
	}
	return nil
}

// LogLevelValue parses log_level.
func (c *Config) LogLevelValue() (slog.Level, error) {
	return boot.ParseLogLevel(c.LogLevel)
}
