package proxy

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/panoramix-mixnet/panoramix/internal/boot"
	"github.com/panoramix-mixnet/panoramix/internal/imapd"
	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/config"
	"github.com/panoramix-mixnet/panoramix/pkg/passwd"
	"github.com/panoramix-mixnet/panoramix/pkg/sealmail"
)

// The local mailbox (docs/spec/mailproxy.md section 9): with [mailbox] read_via_link, each
// account's engine fetches the account's mail through its link (client.Config.ReadMail) into
// one mail store in the data directory, served over IMAP on loopback by the same server code
// as the provider's.

// passwordBytes is the randomness of the local IMAP password: 120 bits, 24 base32 letters.
const passwordBytes = 15

// maxPasswordFile bounds what is read from the password file.
const maxPasswordFile = 1024

// LocalUser is the local IMAP user name of an account: the local part of its address. It is
// what Thunderbird fills in (its guess and the providers' autoconfiguration both use
// %EMAILLOCALPART%) and the account's name at its provider, so a mail program moved from the
// provider's IMAP to the local one keeps its user name; the mail store's names have no '@'.
func LocalUser(a config.Account) string { return a.User() }

// EnsurePassword returns the local IMAP password from path, creating the file (0600) with a
// fresh random password when it does not exist (created set).
func EnsurePassword(path string) (pw string, created bool, err error) {
	pw, err = ReadPassword(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return pw, false, err
	}
	b := make([]byte, passwordBytes)
	rand.Read(b)
	pw = strings.ToLower(base32.StdEncoding.EncodeToString(b))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("imap password: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("imap password: %w", err)
	}
	_, werr := f.WriteString(pw + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return "", false, fmt.Errorf("imap password %s: %w", path, err)
	}
	return pw, true, nil
}

// ReadPassword reads the local IMAP password file.
func ReadPassword(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("imap password: %w", err)
	}
	defer f.Close()
	b := make([]byte, maxPasswordFile+1)
	n, _ := f.Read(b)
	pw := strings.TrimSpace(string(b[:n]))
	if n > maxPasswordFile || pw == "" || strings.ContainsAny(pw, "\r\n") {
		return "", fmt.Errorf("imap password %s: want one line of at most %d bytes (delete the file and run 'mailproxy init' for a new one)", path, maxPasswordFile)
	}
	return pw, nil
}

// openMailbox opens the local mail store, with one user per account whose password is the
// one in the password file (created if missing).
func openMailbox(cfg *config.Config, log *slog.Logger) (*mailstore.Store, error) {
	pw, created, err := EnsurePassword(cfg.PasswordFile())
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("local IMAP password created (mailproxy imap-password prints it)", "file", cfg.PasswordFile())
	}
	st, err := mailstore.Open(cfg.MailStore())
	if err != nil {
		return nil, fmt.Errorf("local mailbox: %w", err)
	}
	for _, a := range cfg.Accounts {
		user := LocalUser(a)
		if err := st.CreateUser(user, 0); err != nil && !errors.Is(err, mailstore.ErrUserExists) {
			st.Close()
			return nil, fmt.Errorf("local mailbox of %s: %w", a.Address, err)
		}
		// A password file replaced by hand takes effect at the next start.
		if st.Authenticate(user, pw) == nil {
			continue
		}
		h, err := passwd.Hash(pw)
		if err == nil {
			err = st.SetPassword(user, h)
		}
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("local mailbox of %s: %w", a.Address, err)
		}
	}
	return st, nil
}

// readMail is an account's client.Config.ReadMail: the mail goes into the local INBOX once per
// mail id (the provider's delivery key), so a mail handed over again after a crash is stored
// once.
func readMail(st *mailstore.Store, user string, log *slog.Logger) func(context.Context, sealmail.ID, []byte) error {
	return func(_ context.Context, id sealmail.ID, msg []byte) error {
		uid, dup, err := st.DeliverOnce(user, mailstore.Inbox, id[:], msg)
		if err != nil {
			return err
		}
		log.Info("mail stored in the local INBOX", "uid", uid, "size", len(msg), "repeat", dup)
		return nil
	}
}

// newIMAP makes the local IMAP server: clear text on a loopback address (config checks it),
// so that the mail program needs no certificate; STARTTLS is not offered.
func newIMAP(cfg *config.Config, st *mailstore.Store, log *slog.Logger) (*imapd.Server, error) {
	// imapd lets InsecureAuth listen anywhere; clear-text passwords stay on this machine.
	if err := boot.CheckLoopback(cfg.IMAP.ListenAddress, "the local mailbox is served without TLS"); err != nil {
		return nil, fmt.Errorf("local imap: [imap] listen_address: %w", err)
	}
	s, err := imapd.New(imapd.Config{Addr: cfg.IMAP.ListenAddress, InsecureAuth: true, Logger: log.With("component", "imap")}, st)
	if err != nil {
		return nil, fmt.Errorf("local imap: %w", err)
	}
	return s, nil
}
