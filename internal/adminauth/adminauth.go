// Package adminauth guards the daemons' local admin HTTP APIs (mixd's users, the directory's
// node approvals) and gives mixctl the matching client side.
//
// Listening on loopback keeps other machines out, but not the operator's own web browser: a
// page can POST a text/plain form to 127.0.0.1 (cross-site request forgery), and a page whose
// host name is re-resolved to 127.0.0.1 (DNS rebinding) can send any request and read the
// answer. Require therefore refuses, before any handler runs and so with nothing changed:
//   - a Host header other than a loopback name with the listener's own port (403): a rebound
//     page's requests carry the attacker's host name;
//   - a request without the bearer token from the daemon's 0600 token file (401): a page can
//     neither read the file nor set the header cross-origin;
//   - a request body that is not application/json (415): the only types a page may send
//     cross-origin without asking first are form types and text/plain.
package adminauth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
)

// DefaultFile is the token file's name inside a daemon's data_dir when its configuration does
// not name one (admin_token_file).
const DefaultFile = "admin.token"

// MinPasswordLength is the shortest IMAP password mixd's admin API accepts and mixctl sends.
const MinPasswordLength = 8

const (
	// tokenBytes of randomness in a generated token: 256 bits, not guessable online.
	tokenBytes = 32
	// minTokenLength and maxTokenLength bound a token an operator writes themselves: at least
	// 128 bits as hex, and far below the file read limit.
	minTokenLength = 32
	maxTokenLength = 512
	// maxFileSize is the most Load reads of a token file.
	maxFileSize = 4096
)

// Token is a daemon's admin token. Only its SHA-256 is kept, so that comparing a request's
// token with it takes the same time whatever the lengths.
type Token struct {
	sum [sha256.Size]byte
}

// LoadOrCreate returns the daemon's token from path, creating the file (mode 0600, a new random
// token) if it does not exist. It refuses a file that group or others may read: the token is
// the admin API's only secret.
func LoadOrCreate(path string) (*Token, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := create(path); err != nil {
			return nil, err
		}
		fi, err = os.Stat(path)
	}
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("admin token %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("admin token %s: mode %04o lets group or others read it: run chmod 600 %s", path, perm, path)
	}
	s, err := Load(path)
	if err != nil {
		return nil, err
	}
	return &Token{sum: sha256.Sum256([]byte(s))}, nil
}

// create writes a new token file; O_EXCL so that two daemons sharing a path cannot both write.
func create(path string) error {
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(b[:]) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("admin token: writing %s: %w", path, err)
	}
	return nil
}

// Load reads the token from the file at path: one line of 32 to 512 characters of the bearer
// token alphabet (RFC 6750 section 2.1). mixctl reads the daemon's file with it.
func Load(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return "", fmt.Errorf("admin token %s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return "", fmt.Errorf("admin token %s: over %d bytes", path, maxFileSize)
	}
	s := string(bytes.TrimSpace(b))
	if len(s) < minTokenLength || len(s) > maxTokenLength || strings.IndexFunc(s, notToken68) >= 0 {
		return "", fmt.Errorf("admin token %s: want one line of %d to %d letters, digits or -._~+/=", path, minTokenLength, maxTokenLength)
	}
	return s, nil
}

func notToken68(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~+/=", r))
}

// SetHeaders prepares a client's request to an admin API: the bearer token, and the JSON
// content type when the request has a body.
func SetHeaders(req *http.Request, token string) {
	req.Header.Set("Authorization", "Bearer "+token)
	if req.Body != nil && req.Body != http.NoBody {
		req.Header.Set("Content-Type", "application/json")
	}
}

// Require serves next only for requests that pass the checks in the package comment; others get
// 403, 401 or 415 with a JSON body {"error": "..."}.
func Require(t *Token, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkHost(r); err != nil {
			refuse(w, http.StatusForbidden, err.Error())
			return
		}
		if !t.matches(r.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="panoramix admin"`)
			refuse(w, http.StatusUnauthorized, "missing or wrong admin token: send \"Authorization: Bearer TOKEN\" with the token in the daemon's admin token file (mixctl --admin-token FILE)")
			return
		}
		if r.ContentLength != 0 {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				refuse(w, http.StatusUnsupportedMediaType, fmt.Sprintf("a request body must have Content-Type application/json, not %q", r.Header.Get("Content-Type")))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// checkHost accepts a Host that names loopback (localhost or a loopback IP address) with the
// port the request arrived on. Anything else is a name that a browser resolved to us: a
// DNS-rebound page.
func checkHost(r *http.Request) error {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if local == nil {
		return errors.New("admin API: no local address for the request")
	}
	_, wantPort, err := net.SplitHostPort(local.String())
	if err != nil {
		return fmt.Errorf("admin API: local address %s: %w", local, err)
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(r.Host, "["), "]"), "80"
	}
	ip, ipErr := netip.ParseAddr(host)
	loopback := strings.EqualFold(host, "localhost") || ipErr == nil && ip.IsLoopback() && ip.Zone() == ""
	if !loopback || port != wantPort {
		return fmt.Errorf("admin API: Host %q is not this loopback listener (localhost, 127.0.0.1 or [::1] with port %s): requests through other host names (DNS rebinding) are refused", r.Host, wantPort)
	}
	return nil
}

// matches reports whether header carries the token; with no token (a daemon wired without
// one) nothing matches, so a mistake closes the API rather than opening it.
func (t *Token) matches(header string) bool {
	if t == nil {
		return false
	}
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1
}

func refuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
