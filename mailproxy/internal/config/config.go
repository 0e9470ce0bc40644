// Package config reads mailproxy's TOML configuration strictly: an unknown key is an error
// naming it, the version must be known, defaults come from Default, and every scalar key
// outside [[accounts]] can be overridden from the environment as PANORAMIX_MAILPROXY_<KEY>
// (nested keys joined by "_", for example PANORAMIX_MAILPROXY_SMTP_LISTEN_ADDRESS).
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"path/filepath"
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
const EnvPrefix = "PANORAMIX_MAILPROXY"

// Hard limits on configured values.
const (
	// MaxMessageSizeLimit is the largest max_message_size accepted (the engine's own bound
	// for one message is higher; this keeps one SMTP transaction's memory in check).
	MaxMessageSizeLimit = 64 << 20
	// MaxAccounts bounds [[accounts]]: each account runs its own engine and link.
	MaxAccounts = 64
	// MaxRecipientsLimit bounds max_recipients.
	MaxRecipientsLimit = 1000
)

// Config is mailproxy's configuration.
type Config struct {
	Version int `mapstructure:"version"`
	// DataDir holds one engine store per account (DataDir/<address>/client.db), the proxy's own
	// records (mailproxy.db) and the status socket.
	DataDir string `mapstructure:"data_dir"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `mapstructure:"log_level"`
	// StatusSocket is the Unix socket of the local status API read by `mailproxy status`;
	// empty means DataDir/status.sock.
	StatusSocket string `mapstructure:"status_socket"`
	// StatusRetention is how long delivered messages stay listed in the status.
	StatusRetention time.Duration `mapstructure:"status_retention"`
	// QueueLifetime is how long mail waits while no provider serves its domain (a provider
	// down for a while) before it bounces, and how long after the last consensus that listed
	// a domain new mail for it is answered 451 rather than 550 (docs/spec/mailproxy.md
	// section 2). Postfix's maximal_queue_lifetime is 5 days too.
	QueueLifetime time.Duration `mapstructure:"queue_lifetime"`
	SMTP          SMTP          `mapstructure:"smtp"`
	Directory     Directory     `mapstructure:"directory"`
	Smarthost     Smarthost     `mapstructure:"smarthost"`
	Mailbox       Mailbox       `mapstructure:"mailbox"`
	IMAP          IMAP          `mapstructure:"imap"`
	Agent         Agent         `mapstructure:"agent"`
	Accounts      []Account     `mapstructure:"accounts"`
}

// Agent configures the local agent API (docs/spec/agent.md): programs of the user's own send
// and receive through the accounts' engines over HTTP/JSON on a loopback address.
type Agent struct {
	// ListenAddress must be a loopback address; empty (the default) serves no agent API.
	ListenAddress string `mapstructure:"listen_address"`
	// TokenFile holds the bearer token clients present (made, 0600, at the first start);
	// default DataDir/agent.token.
	TokenFile string `mapstructure:"token_file"`
}

// Mailbox says where the user reads mail (docs/spec/mailproxy.md section 9).
type Mailbox struct {
	// ReadViaLink: mailproxy fetches each account's mail through its link to the provider, on
	// the link's fixed schedule, into a local mailbox (DataDir/mail.db) that it serves over
	// IMAP on [imap] listen_address. false: the mail stays at the provider's IMAP server, where
	// an observer of that connection sees every arrival.
	ReadViaLink bool `mapstructure:"read_via_link"`
}

// IMAP configures the local IMAP server of the local mailbox.
type IMAP struct {
	// ListenAddress must be a loopback address: the server speaks IMAP without TLS (so that a
	// mail program needs no certificate), with the password of DataDir/imap-password.
	ListenAddress string `mapstructure:"listen_address"`
}

// PasswordFile is where the local IMAP server's password is kept ('mailproxy init' writes it).
func (c *Config) PasswordFile() string { return filepath.Join(c.DataDir, "imap-password") }

// MailStore is the local mailbox's store.
func (c *Config) MailStore() string { return filepath.Join(c.DataDir, "mail.db") }

// SMTP configures the submission server for the user's mail program.
type SMTP struct {
	// ListenAddress must be a loopback address: the server has no authentication, anyone who
	// reaches it can send as the configured accounts.
	ListenAddress string `mapstructure:"listen_address"`
	// MaxMessageSize is the largest mail accepted, in bytes (larger: 552).
	MaxMessageSize int `mapstructure:"max_message_size"`
	// MaxRecipients bounds the recipients of one mail.
	MaxRecipients int `mapstructure:"max_recipients"`
}

// Directory says where the consensus comes from and whom to trust.
type Directory = pki.DirectorySection

// Smarthost is the optional ordinary SMTP relay for recipients whose domain is not in the
// mixnet. Empty Address: such recipients are refused (550). Mail relayed there leaves the
// mixnet's protection; mailproxy logs every relay.
type Smarthost struct {
	// Address is host:port of a relay that accepts mail from this machine without
	// authentication (for example the user's provider's submission port behind a local
	// forwarder).
	Address string `mapstructure:"address"`
}

// Account is one sender address: a user at a provider.
type Account struct {
	// Address is the mail address (user@domain); user is the account's name at the provider
	// and domain the provider's mail domain.
	Address string `mapstructure:"address"`
	// LinkKeyFile is the account's link private key (made by `mailproxy init`); relative to
	// the config file's directory.
	LinkKeyFile string `mapstructure:"link_key_file"`
	// RetryBudget is transmissions per fragment at the normal pace; 0 is the engine's default.
	// Past them the engine resends with backoff until queue_lifetime, then the mail bounces
	// (docs/spec/client.md section 4, RetryFor).
	RetryBudget int `mapstructure:"retry_budget"`
	// AckSlack is added to a fragment's expected round trip before it is resent; 0 is the
	// engine's default.
	AckSlack time.Duration `mapstructure:"ack_slack"`
	// RetrieveInterval is the fixed interval between retrieves of ACKs from the provider; 0 is
	// the engine's default (250ms). Its rate must exceed the network's lambda_P + lambda_L.
	RetrieveInterval time.Duration `mapstructure:"retrieve_interval"`
	// RetrieveBatch is the answers each retrieve exchange asks for (1 to 16); 0 is the engine's
	// default (1). The provider sends that many frames per exchange whatever waits, so the
	// downstream traffic grows with it (docs/spec/client.md section 6).
	RetrieveBatch int `mapstructure:"retrieve_batch"`
	// Keyring is an armored file of recipients' OpenPGP public keys (gpg --export --armor);
	// empty: none. Relative to the config file's directory.
	Keyring string `mapstructure:"keyring"`
	// Encrypt is "if-key" (the default when empty): a mail to a recipient whose key is in the
	// keyring is encrypted as PGP/MIME unless it is encrypted already; or "never".
	Encrypt string `mapstructure:"encrypt"`
}

// Encryption modes of Account.Encrypt.
const (
	EncryptIfKey = "if-key"
	EncryptNever = "never"
)

// EncryptMode is Encrypt with its default applied.
func (a Account) EncryptMode() string {
	if a.Encrypt == "" {
		return EncryptIfKey
	}
	return a.Encrypt
}

// User is the local part of the account's address (its name at the provider).
func (a Account) User() string { u, _, _ := strings.Cut(a.Address, "@"); return u }

// Domain is the account's provider domain.
func (a Account) Domain() string { _, d, _ := strings.Cut(a.Address, "@"); return d }

// MaxQueueLifetime bounds queue_lifetime: a mail program and its user wait no longer.
const MaxQueueLifetime = 30 * 24 * time.Hour

// Default returns the defaults.
func Default() Config {
	return Config{
		Version:         Version,
		DataDir:         "mailproxy-data",
		LogLevel:        "info",
		StatusRetention: 24 * time.Hour,
		QueueLifetime:   5 * 24 * time.Hour,
		SMTP:            SMTP{ListenAddress: "127.0.0.1:2525", MaxMessageSize: 25 << 20, MaxRecipients: 100},
		Mailbox:         Mailbox{ReadViaLink: true},
		IMAP:            IMAP{ListenAddress: "127.0.0.1:1143"},
		Directory: Directory{
			URLs:        []string{"http://127.0.0.1:7000"},
			Threshold:   1,
			EpochLength: pki.DefaultParameters().EpochLength,
		},
	}
}

// Load reads the file at path, applies defaults and environment overrides, resolves relative
// paths against the file's directory, and validates the result.
func Load(path string) (*Config, error) {
	d := Default()
	defaults := map[string]any{
		"version": d.Version, "data_dir": d.DataDir, "log_level": d.LogLevel, "status_socket": d.StatusSocket,
		"status_retention": d.StatusRetention, "queue_lifetime": d.QueueLifetime, "smtp.listen_address": d.SMTP.ListenAddress,
		"smtp.max_message_size": d.SMTP.MaxMessageSize, "smtp.max_recipients": d.SMTP.MaxRecipients,
		"directory.urls": d.Directory.URLs, "directory.threshold": d.Directory.Threshold,
		"directory.authorities": d.Directory.Authorities, "directory.epoch_length": d.Directory.EpochLength,
		"smarthost.address": d.Smarthost.Address, "mailbox.read_via_link": d.Mailbox.ReadViaLink,
		"imap.listen_address": d.IMAP.ListenAddress, "agent.listen_address": d.Agent.ListenAddress,
		"agent.token_file": d.Agent.TokenFile,
	}
	var c Config
	if err := boot.LoadTOML(path, EnvPrefix, defaults, &c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	paths := []*string{&c.DataDir, &c.StatusSocket, &c.Agent.TokenFile}
	for i := range c.Accounts {
		paths = append(paths, &c.Accounts[i].LinkKeyFile, &c.Accounts[i].Keyring)
	}
	if err := boot.ResolvePaths(path, paths...); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if c.StatusSocket == "" && c.DataDir != "" {
		c.StatusSocket = filepath.Join(c.DataDir, "status.sock")
	}
	if c.Agent.TokenFile == "" && c.DataDir != "" {
		c.Agent.TokenFile = filepath.Join(c.DataDir, "agent.token")
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
	if _, err := c.LogLevelValue(); err != nil {
		return err
	}
	if c.StatusRetention < 0 {
		return fmt.Errorf("status_retention = %v: want 0 or more", c.StatusRetention)
	}
	if c.QueueLifetime < time.Minute || c.QueueLifetime > MaxQueueLifetime {
		return fmt.Errorf("queue_lifetime = %v: want 1m to %v", c.QueueLifetime, MaxQueueLifetime)
	}
	if err := boot.CheckLoopback(c.SMTP.ListenAddress, "the server has no authentication"); err != nil {
		return fmt.Errorf("[smtp] listen_address: %w", err)
	}
	if c.SMTP.MaxMessageSize < 1024 || c.SMTP.MaxMessageSize > MaxMessageSizeLimit {
		return fmt.Errorf("[smtp] max_message_size = %d: want 1024 to %d", c.SMTP.MaxMessageSize, MaxMessageSizeLimit)
	}
	if c.SMTP.MaxRecipients < 1 || c.SMTP.MaxRecipients > MaxRecipientsLimit {
		return fmt.Errorf("[smtp] max_recipients = %d: want 1 to %d", c.SMTP.MaxRecipients, MaxRecipientsLimit)
	}
	if err := c.Directory.Validate(); err != nil {
		return err
	}
	if c.Smarthost.Address != "" {
		if _, port, err := net.SplitHostPort(c.Smarthost.Address); err != nil || port == "" || port == "0" {
			return fmt.Errorf("[smarthost] address = %q: want host:port", c.Smarthost.Address)
		}
	}
	if len(c.Accounts) == 0 {
		return errors.New("[[accounts]] is empty: add at least one account (mailproxy init prints one)")
	}
	if len(c.Accounts) > MaxAccounts {
		return fmt.Errorf("[[accounts]]: %d accounts, at most %d", len(c.Accounts), MaxAccounts)
	}
	if c.Agent.ListenAddress != "" {
		if err := boot.CheckLoopback(c.Agent.ListenAddress, "only the user's own programs may use the agent API"); err != nil {
			return fmt.Errorf("[agent] listen_address: %w", err)
		}
	}
	if c.Mailbox.ReadViaLink {
		if err := boot.CheckLoopback(c.IMAP.ListenAddress, "the local mailbox is served without TLS"); err != nil {
			return fmt.Errorf("[imap] listen_address: %w", err)
		}
	}
	seen, users := map[string]bool{}, map[string]string{}
	for i, a := range c.Accounts {
		if err := a.validate(); err != nil {
			return fmt.Errorf("accounts[%d]: %w", i, err)
		}
		if seen[a.Address] {
			return fmt.Errorf("accounts[%d] address = %q: listed twice", i, a.Address)
		}
		seen[a.Address] = true
		if c.Mailbox.ReadViaLink {
			// The local IMAP login is the local part, as at the provider.
			if other, ok := users[a.User()]; ok {
				return fmt.Errorf("accounts[%d] address = %q: same user name as %q, and both would be the local IMAP user %q (set [mailbox] read_via_link = false, or use one of them)", i, a.Address, other, a.User())
			}
			users[a.User()] = a.Address
		}
	}
	return nil
}

// ValidAddress checks that s is a plain lowercase user@domain address whose user is a valid
// recipient id at a provider (docs/spec/sphinx.md recipient rules).
func ValidAddress(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return fmt.Errorf("%q is not a plain mail address (user@domain)", s)
	}
	user, domain, ok := strings.Cut(s, "@")
	if !ok || user == "" || domain == "" {
		return fmt.Errorf("%q is not user@domain", s)
	}
	if strings.ToLower(s) != s {
		return fmt.Errorf("%q: write the address in lowercase", s)
	}
	if err := (sphinx.Recipient{Service: "mailbox", ID: user}).Validate(); err != nil {
		return fmt.Errorf("%q: the user part is not a valid recipient: %w", s, err)
	}
	return nil
}

func (a Account) validate() error {
	if err := ValidAddress(a.Address); err != nil {
		return fmt.Errorf("address: %w", err)
	}
	if a.LinkKeyFile == "" {
		return errors.New("link_key_file is empty (mailproxy init creates the key)")
	}
	if a.RetryBudget < 0 || a.RetryBudget > 1000 {
		return fmt.Errorf("retry_budget = %d: want 0 (default) to 1000", a.RetryBudget)
	}
	if a.AckSlack < 0 {
		return fmt.Errorf("ack_slack = %v: want 0 (default) or more", a.AckSlack)
	}
	if m := a.EncryptMode(); m != EncryptIfKey && m != EncryptNever {
		return fmt.Errorf("encrypt = %q: want %q or %q", a.Encrypt, EncryptIfKey, EncryptNever)
	}
	if a.RetrieveInterval != 0 && (a.RetrieveInterval < 10*time.Millisecond || a.RetrieveInterval > time.Minute) {
		return fmt.Errorf("retrieve_interval = %v: want 0 (default) or 10ms to 1m", a.RetrieveInterval)
	}
	if a.RetrieveBatch < 0 || a.RetrieveBatch > wire.MaxRetrieveBatch {
		return fmt.Errorf("retrieve_batch = %d: want 0 (default, 1) to %d", a.RetrieveBatch, wire.MaxRetrieveBatch)
	}
	return nil
}

// PKIConfig is the consensus client configuration of [directory].
func (c *Config) PKIConfig(log *slog.Logger) (pki.ClientConfig, error) {
	return c.Directory.ClientConfig(log)
}

// Account returns the account with the given address.
func (c *Config) Account(address string) (Account, bool) {
	for _, a := range c.Accounts {
		if a.Address == address {
			return a, true
		}
	}
	return Account{}, false
}

// LogLevelValue parses log_level.
func (c *Config) LogLevelValue() (slog.Level, error) {
	return boot.ParseLogLevel(c.LogLevel)
}
