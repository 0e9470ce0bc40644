package mailstore

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits on what users (through IMAP) and the admin can put into the store.
const (
	MaxUserNameSize     = 64
	MaxMailboxNameSize  = 200
	MaxMailboxDepth     = 16
	MaxMailboxesPerUser = 1000
	// MaxSubscriptions bounds a user's subscribed names, which need not name a mailbox.
	MaxSubscriptions   = 1000
	MaxFlagSize        = 64
	MaxFlagsPerMessage = 32
	// MaxMessageSize bounds one message. The IMAP server's literal limit is at most this; the
	// mixnet's reassembly has its own, smaller limit.
	MaxMessageSize = 64 << 20
)

// Delimiter separates levels of the mailbox hierarchy.
const Delimiter = '/'

// Inbox is the canonical name of the mailbox that always exists; IMAP treats it case-insensitively.
const Inbox = "INBOX"

// System flags (RFC 3501 section 2.3.2). \Recent is not stored: it is a per-session notion this
// store does not keep.
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
	flagRecent   = `\Recent`
)

var systemFlags = []string{FlagSeen, FlagAnswered, FlagFlagged, FlagDeleted, FlagDraft}

// SystemFlags returns the system flags the store keeps.
func SystemFlags() []string { return slices.Clone(systemFlags) }

// checkUserName accepts lower-case letters, digits, '.', '_' and '-', starting with a letter or
// digit: a safe subset of mail local parts that needs no case folding.
func checkUserName(name string) error {
	if name == "" || len(name) > MaxUserNameSize {
		return fmt.Errorf("%w: user name must be 1 to %d bytes", ErrInvalidName, MaxUserNameSize)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return fmt.Errorf("%w: user name %q: only a-z, 0-9 and . _ - (not first) are allowed", ErrInvalidName, name)
		}
	}
	return nil
}

// canonicalMailbox returns the stored form of a mailbox name, or an error naming what is wrong.
func canonicalMailbox(name string) (string, error) {
	if strings.EqualFold(name, Inbox) {
		return Inbox, nil
	}
	if name == "" || len(name) > MaxMailboxNameSize {
		return "", fmt.Errorf("%w: mailbox name must be 1 to %d bytes", ErrInvalidName, MaxMailboxNameSize)
	}
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: mailbox name is not valid UTF-8", ErrInvalidName)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '*' || r == '%' {
			return "", fmt.Errorf("%w: mailbox name %q contains a control or wildcard character", ErrInvalidName, name)
		}
	}
	parts := strings.Split(name, string(Delimiter))
	if len(parts) > MaxMailboxDepth {
		return "", fmt.Errorf("%w: mailbox name %q is nested deeper than %d levels", ErrInvalidName, name, MaxMailboxDepth)
	}
	if slices.Contains(parts, "") {
		return "", fmt.Errorf("%w: mailbox name %q has an empty level", ErrInvalidName, name)
	}
	return name, nil
}

// canonicalFlags validates flags and returns them deduplicated (keywords case-insensitively),
// system flags in their canonical spelling, sorted. \Recent is dropped: clients cannot set it.
func canonicalFlags(flags []string) ([]string, error) {
	out := make([]string, 0, len(flags))
	seen := make(map[string]bool, len(flags))
	for _, f := range flags {
		if f == "" || len(f) > MaxFlagSize {
			return nil, fmt.Errorf("%w: flag must be 1 to %d bytes", ErrInvalidFlag, MaxFlagSize)
		}
		if f[0] == '\\' {
			i := slices.IndexFunc(systemFlags, func(s string) bool { return strings.EqualFold(s, f) })
			if i < 0 {
				if strings.EqualFold(f, flagRecent) {
					continue
				}
				return nil, fmt.Errorf("%w: unknown system flag %q", ErrInvalidFlag, f)
			}
			f = systemFlags[i]
		} else if !isAtom(f) {
			return nil, fmt.Errorf("%w: keyword %q is not an IMAP atom", ErrInvalidFlag, f)
		}
		key := strings.ToLower(f)
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, f)
	}
	if len(out) > MaxFlagsPerMessage {
		return nil, fmt.Errorf("%w: more than %d flags on one message", ErrInvalidFlag, MaxFlagsPerMessage)
	}
	slices.Sort(out)
	return out, nil
}

// isAtom reports whether s consists of IMAP ATOM-CHARs (RFC 3501 section 9).
func isAtom(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return s != ""
}

// HasFlag reports whether flags contains flag (case-insensitively).
func HasFlag(flags []string, flag string) bool {
	return slices.ContainsFunc(flags, func(f string) bool { return strings.EqualFold(f, flag) })
}
