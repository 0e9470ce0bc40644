// Package config reads mixd's TOML configuration strictly: an unknown key is an error naming it,
// the version must be known, defaults come from Default, and every scalar key can be overridden
// from the environment as PANORAMIX_MIXD_<KEY> (nested keys joined by "_", for example
// PANORAMIX_MIXD_DIRECTORY_THRESHOLD).
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/internal/boot"
	"github.com/panoramix-mixnet/panoramix/internal/imapd"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// Version is the configuration format version this package reads.
const Version = 1

// EnvPrefix prefixes environment overrides.
const EnvPrefix = "PANORAMIX_MIXD"

// Config is mixd's configuration.
type Config struct {
	Version int `mapstructure:"version"`
	// Role is "mix" or "provider".
	Role string `mapstructure:"role"`
	// DataDir holds the node's keys, replay filters and, on a provider, users and queues.
	DataDir string `mapstructure:"data_dir"`
	// ListenAddress is where the node accepts links (TLS), host:port.
	ListenAddress string `mapstructure:"listen_address"`
	// Addresses are published in the node's descriptor; empty means [listen_address].
	Addresses []string `mapstructure:"addresses"`
	// MetricsAddress serves /metrics; empty disables it.
	MetricsAddress string `mapstructure:"metrics_address"`
	// AdminAddress serves the provider's admin API (users); loopback only; empty disables it.
	AdminAddress string `mapstructure:"admin_address"`
	// AdminTokenFile holds the admin API's bearer token (mode 0600, created at first start if
	// missing; mixctl --admin-token reads it); empty means data_dir/admin.token.
	AdminTokenFile string `mapstructure:"admin_token_file"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `mapstructure:"log_level"`
	// MaxPacketRate is the most packets per second the node is sized for; it sizes the
	// replay filter of each epoch key (rate times the key's lifetime).
	MaxPacketRate int       `mapstructure:"max_packet_rate"`
	Sphinx        Sphinx    `mapstructure:"sphinx"`
	Directory     Directory `mapstructure:"directory"`
	Provider      Provider  `mapstructure:"provider"`
	Mailbox       Mailbox   `mapstructure:"mailbox"`
	IMAP          IMAP      `mapstructure:"imap"`
	Survey        Survey    `mapstructure:"survey"`
	Vote          Vote      `mapstructure:"vote"`
	// Autoconfig serves Thunderbird's autoconfiguration (autoconfig.go).
	Autoconfig Autoconfig `mapstructure:"autoconfig"`
	// Plugins are the [[plugin]] sections: services run as child processes (plugin.go).
	Plugins []Plugin `mapstructure:"plugin"`
}

// Vote configures a provider's ballot box, the vote service (docs/spec/vote.md §11.8).
type Vote struct {
	// Enabled runs the vote service on a provider.
	Enabled bool `mapstructure:"enabled"`
	// Dir is the box directory: the box key, and each election's parameters and board
	// (default data_dir/vote; relative to the configuration file).
	Dir string `mapstructure:"dir"`
}

// VoteDir is the box directory of the vote service.
func (c *Config) VoteDir() string {
	if c.Vote.Dir != "" {
		return c.Vote.Dir
	}
	return filepath.Join(c.DataDir, "vote")
}

// Survey configures a provider's survey service (docs/spec/survey.md section 5).
type Survey struct {
	// Enabled runs the survey service on a provider.
	Enabled bool `mapstructure:"enabled"`
	// Database is "sqlite" (embedded, the default) or "postgres".
	Database string `mapstructure:"database"`
	// DSN is, for postgres, the connection string (required); for sqlite, the database file
	// (default data_dir/survey.db; relative to the configuration file).
	DSN string `mapstructure:"dsn"`
}

// AdminTokenPath is the admin API's token file.
func (c *Config) AdminTokenPath() string {
	if c.AdminTokenFile != "" {
		return c.AdminTokenFile
	}
	return filepath.Join(c.DataDir, adminauth.DefaultFile)
}

// SurveyPath is the SQLite file of the survey service.
func (c *Config) SurveyPath() string {
	if c.Survey.DSN != "" {
		return c.Survey.DSN
	}
	return filepath.Join(c.DataDir, "survey.db")
}

// Mailbox configures a provider's mailbox service: where reassembled mail goes.
type Mailbox struct {
	// Backend is "embedded" (the built-in IMAP store) or "lmtp" (hand-off to the provider's
	// existing mail server, such as Dovecot).
	Backend string `mapstructure:"backend"`
	// LMTPNetwork is "tcp" or "unix"; LMTPAddress is host:port or a socket path.
	LMTPNetwork string `mapstructure:"lmtp_network"`
	LMTPAddress string `mapstructure:"lmtp_address"`
	// Expiry is how long an incomplete message waits for its missing fragments.
	Expiry time.Duration `mapstructure:"expiry"`
	// MaxMessageSize bounds one reassembled message, in bytes.
	MaxMessageSize int `mapstructure:"max_message_size"`
}

// IMAP configures the built-in IMAP server (embedded mailbox backend only).
type IMAP struct {
	// ListenAddress serves IMAP with STARTTLS; empty disables it.
	ListenAddress string `mapstructure:"listen_address"`
	// TLSListenAddress serves IMAP over implicit TLS; empty disables it.
	TLSListenAddress string `mapstructure:"tls_listen_address"`
	// CertFile and KeyFile are the server's PEM certificate and key; when both are empty a
	// self-signed certificate is generated in data_dir (fine for a local network, not for users).
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// InsecureAuth allows LOGIN without TLS: only for tests, and refused unless every IMAP
	// listener is on loopback (a password sent in clear text over a network is given away).
	InsecureAuth bool `mapstructure:"insecure_auth"`
	// MaxConnections bounds the server's concurrent connections, and MaxConnectionsPerIP those
	// of one client address (an IPv6 client's /64), loopback included.
	MaxConnections      int `mapstructure:"max_connections"`
	MaxConnectionsPerIP int `mapstructure:"max_connections_per_ip"`
	// LoginTimeout is how long a connection may stay unauthenticated from its connect; no
	// command extends it.
	LoginTimeout time.Duration `mapstructure:"login_timeout"`
}

// maxLoginTimeout bounds [imap] login_timeout: a longer one lets unauthenticated clients keep
// their connection slots for as long.
const maxLoginTimeout = time.Hour

// Sphinx is the packet geometry; it must match the consensus parameters (the node refuses to
// process packets under a document whose geometry hash differs).
type Sphinx struct {
	Hops        int `mapstructure:"hops"`
	PayloadSize int `mapstructure:"payload_size"`
}

// Directory says where the consensus comes from and whom to trust.
type Directory = pki.DirectorySection

// Provider holds the settings of the provider role.
type Provider struct {
	// Domains are the mail domains this provider serves.
	Domains []string `mapstructure:"domains"`
	// UserRate is the packets per second one user's link may send (token bucket rate).
	UserRate float64 `mapstructure:"user_rate"`
	// UserBurst is the token bucket size.
	UserBurst int `mapstructure:"user_burst"`
	// QueueLimit is the most items one user's queue holds; beyond it new items are dropped.
	QueueLimit int `mapstructure:"queue_limit"`
}

// Default returns the defaults.
func Default() Config {
	return Config{
		Version:       Version,
		Role:          "mix",
		DataDir:       "mixd-data",
		ListenAddress: "127.0.0.1:30000",
		LogLevel:      "info",
		MaxPacketRate: 2000,
		Sphinx:        Sphinx{Hops: sphinx.DefaultGeometry().Hops, PayloadSize: sphinx.DefaultGeometry().PayloadSize},
		Directory: Directory{
			URLs:        []string{"http://127.0.0.1:7000"},
			Threshold:   1,
			EpochLength: pki.DefaultParameters().EpochLength,
		},
		Provider: Provider{UserRate: 50, UserBurst: 200, QueueLimit: 10000},
		Mailbox:  Mailbox{Backend: "embedded", LMTPNetwork: "tcp", Expiry: 24 * time.Hour, MaxMessageSize: 32 << 20},
		IMAP:     IMAP{MaxConnections: imapd.DefaultMaxConnections, MaxConnectionsPerIP: imapd.DefaultMaxConnectionsPerIP, LoginTimeout: imapd.DefaultLoginTimeout},
		Survey:   Survey{Enabled: true, Database: "sqlite"},
	}
}

// Load reads the file at path, applies defaults and environment overrides, resolves relative
// paths against the file's directory, and validates the result.
func Load(path string) (*Config, error) {
	d := Default()
	defaults := map[string]any{
		"version": d.Version, "role": d.Role, "data_dir": d.DataDir, "listen_address": d.ListenAddress,
		"metrics_address": d.MetricsAddress, "admin_address": d.AdminAddress, "admin_token_file": d.AdminTokenFile, "log_level": d.LogLevel,
		"max_packet_rate": d.MaxPacketRate, "sphinx.hops": d.Sphinx.Hops, "sphinx.payload_size": d.Sphinx.PayloadSize,
		"directory.urls": d.Directory.URLs, "directory.threshold": d.Directory.Threshold,
		"directory.epoch_length": d.Directory.EpochLength, "provider.user_rate": d.Provider.UserRate,
		"provider.user_burst": d.Provider.UserBurst, "provider.queue_limit": d.Provider.QueueLimit,
		"mailbox.backend": d.Mailbox.Backend, "mailbox.lmtp_network": d.Mailbox.LMTPNetwork, "mailbox.lmtp_address": d.Mailbox.LMTPAddress,
		"mailbox.expiry": d.Mailbox.Expiry, "mailbox.max_message_size": d.Mailbox.MaxMessageSize,
		"imap.listen_address": d.IMAP.ListenAddress, "imap.tls_listen_address": d.IMAP.TLSListenAddress,
		"imap.cert_file": d.IMAP.CertFile, "imap.key_file": d.IMAP.KeyFile, "imap.insecure_auth": d.IMAP.InsecureAuth,
		"imap.max_connections": d.IMAP.MaxConnections, "imap.max_connections_per_ip": d.IMAP.MaxConnectionsPerIP, "imap.login_timeout": d.IMAP.LoginTimeout,
		"survey.enabled": d.Survey.Enabled, "survey.database": d.Survey.Database, "survey.dsn": d.Survey.DSN,
		"vote.enabled": d.Vote.Enabled, "vote.dir": d.Vote.Dir,
		"autoconfig.listen_address": "", "autoconfig.imap_host": "", "autoconfig.imap_port": 0,
		"autoconfig.imap_socket": "", "autoconfig.smtp_address": DefaultAutoconfigSMTP,
	}
	var c Config
	if err := boot.LoadTOML(path, EnvPrefix, defaults, &c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	paths := []*string{&c.DataDir, &c.AdminTokenFile, &c.IMAP.CertFile, &c.IMAP.KeyFile, &c.Vote.Dir}
	if c.Survey.Database == "sqlite" {
		paths = append(paths, &c.Survey.DSN)
	}
	if err := boot.ResolvePaths(path, paths...); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.resolvePlugins(path); err != nil {
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
	role, err := c.RoleValue()
	if err != nil {
		return err
	}
	if c.DataDir == "" {
		return errors.New("data_dir is empty")
	}
	if _, _, err := net.SplitHostPort(c.ListenAddress); err != nil {
		return fmt.Errorf("listen_address = %q: %w", c.ListenAddress, err)
	}
	for i, a := range c.PublishedAddresses() {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "0" {
			return fmt.Errorf("addresses[%d] = %q: want host:port with a fixed port", i, a)
		}
	}
	if c.MetricsAddress != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddress); err != nil {
			return fmt.Errorf("metrics_address = %q: %w", c.MetricsAddress, err)
		}
	}
	if c.AdminAddress != "" {
		if err := boot.CheckLoopback(c.AdminAddress, "the admin API is for the operator on this machine"); err != nil {
			return fmt.Errorf("admin_address: %w", err)
		}
	}
	if _, err := c.LogLevelValue(); err != nil {
		return err
	}
	if err := c.Geometry().Validate(); err != nil {
		return fmt.Errorf("[sphinx]: %w", err)
	}
	if c.MaxPacketRate < 1 || c.MaxPacketRate > 1000000 {
		return fmt.Errorf("max_packet_rate = %d: want 1 to 1000000", c.MaxPacketRate)
	}
	if err := c.Directory.Validate(); err != nil {
		return err
	}
	if role == pki.RoleProvider {
		if len(c.Provider.Domains) == 0 {
			return errors.New("[provider] domains is empty: a provider serves at least one mail domain")
		}
		if c.Provider.UserRate <= 0 || c.Provider.UserBurst < 1 || c.Provider.QueueLimit < 1 {
			return errors.New("[provider] user_rate, user_burst and queue_limit must be positive")
		}
		if err := c.validateMail(); err != nil {
			return err
		}
		if err := c.Survey.validate(); err != nil {
			return err
		}
	} else if len(c.Provider.Domains) != 0 {
		return errors.New("[provider] domains is set but role is \"mix\"")
	}
	if err := c.validateAutoconfig(); err != nil {
		return err
	}
	if err := c.validatePlugins(role == pki.RoleProvider); err != nil {
		return err
	}
	if c.Vote.Enabled && role != pki.RoleProvider {
		return errors.New("[vote] enabled = true but role is \"mix\": the ballot box runs on a provider")
	}
	return nil
}

func (s *Survey) validate() error {
	switch s.Database {
	case "sqlite":
		if strings.ContainsAny(s.DSN, "?#") {
			return fmt.Errorf("[survey] dsn = %q: for sqlite, a file path", s.DSN)
		}
	case "postgres":
		if s.DSN == "" {
			return errors.New("[survey] dsn is empty: name the PostgreSQL database (postgres://user@host/db or host=... dbname=...)")
		}
	default:
		return fmt.Errorf("[survey] database = %q: want \"sqlite\" or \"postgres\"", s.Database)
	}
	return nil
}

func (c *Config) validateMail() error {
	m := c.Mailbox
	switch m.Backend {
	case "embedded":
	case "lmtp":
		if m.LMTPNetwork != "tcp" && m.LMTPNetwork != "unix" {
			return fmt.Errorf("[mailbox] lmtp_network = %q: want \"tcp\" or \"unix\"", m.LMTPNetwork)
		}
		if m.LMTPAddress == "" {
			return errors.New("[mailbox] lmtp_address is empty: name the LMTP server (for Dovecot, its lmtp listener)")
		}
		if c.IMAP.ListenAddress != "" || c.IMAP.TLSListenAddress != "" {
			return errors.New("[imap] is set but [mailbox] backend is \"lmtp\": the built-in IMAP server only serves the embedded store")
		}
	default:
		return fmt.Errorf("[mailbox] backend = %q: want \"embedded\" or \"lmtp\"", m.Backend)
	}
	if m.Expiry < time.Minute {
		return fmt.Errorf("[mailbox] expiry = %v: at least 1m", m.Expiry)
	}
	if m.MaxMessageSize < 1024 || m.MaxMessageSize > 1<<30 {
		return fmt.Errorf("[mailbox] max_message_size = %d: want 1 KiB to 1 GiB", m.MaxMessageSize)
	}
	for key, a := range map[string]string{"listen_address": c.IMAP.ListenAddress, "tls_listen_address": c.IMAP.TLSListenAddress} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("[imap] %s = %q: %w", key, a, err)
		}
	}
	if (c.IMAP.CertFile == "") != (c.IMAP.KeyFile == "") {
		return errors.New("[imap] cert_file and key_file: set both or neither")
	}
	return c.IMAP.validate()
}

func (m *IMAP) validate() error {
	if m.InsecureAuth {
		for key, a := range map[string]string{"listen_address": m.ListenAddress, "tls_listen_address": m.TLSListenAddress} {
			if a == "" {
				continue
			}
			if err := boot.CheckLoopback(a, "insecure_auth sends passwords in clear text"); err != nil {
				return fmt.Errorf("[imap] insecure_auth = true with %s %w; remove insecure_auth outside tests", key, err)
			}
		}
	}
	if m.MaxConnections < 1 || m.MaxConnections > 1000000 {
		return fmt.Errorf("[imap] max_connections = %d: want 1 to 1000000", m.MaxConnections)
	}
	if m.MaxConnectionsPerIP < 1 || m.MaxConnectionsPerIP > m.MaxConnections {
		return fmt.Errorf("[imap] max_connections_per_ip = %d: want 1 to max_connections (%d)", m.MaxConnectionsPerIP, m.MaxConnections)
	}
	if m.LoginTimeout < time.Second || m.LoginTimeout > maxLoginTimeout {
		return fmt.Errorf("[imap] login_timeout = %v: want 1s to %v", m.LoginTimeout, maxLoginTimeout)
	}
	return nil
}

// Geometry is the configured Sphinx geometry.
func (c *Config) Geometry() sphinx.Geometry {
	return sphinx.Geometry{Hops: c.Sphinx.Hops, PayloadSize: c.Sphinx.PayloadSize}
}

// RoleValue parses role.
func (c *Config) RoleValue() (pki.Role, error) {
	r, err := pki.ParseRole(c.Role)
	if err != nil {
		return 0, fmt.Errorf("role: %w", err)
	}
	return r, nil
}

// PublishedAddresses are the addresses for the descriptor.
func (c *Config) PublishedAddresses() []string {
	if len(c.Addresses) > 0 {
		return c.Addresses
	}
	return []string{c.ListenAddress}
}

// LogLevelValue returns log_level as a slog.Level.
func (c *Config) LogLevelValue() (slog.Level, error) {
	return boot.ParseLogLevel(c.LogLevel)
}
