package keys

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// File modes written by Save functions. Private keys are for the owner only;
// LoadX refuses private key files with any group or other bit set.
const (
	PrivateKeyFileMode os.FileMode = 0o600
	PublicKeyFileMode  os.FileMode = 0o644
)

// ErrInsecurePermissions is wrapped by the error a Load function returns for
// a private key file that group or others may access.
var ErrInsecurePermissions = errors.New("insecure key file permissions")

// SaveIdentityKey writes k to path (mode 0600, atomically, replacing any
// existing file).
func SaveIdentityKey(path string, k *IdentityPrivateKey) error {
	data, err := MarshalIdentityPrivateKeyPEM(k)
	if err != nil {
		return fmt.Errorf("keys: save identity key %s: %w", path, err)
	}
	defer wipe(data)
	return writeFileAtomic(path, data, PrivateKeyFileMode)
}

// LoadIdentityKey reads a key written by SaveIdentityKey.
func LoadIdentityKey(path string) (*IdentityPrivateKey, error) {
	data, err := readKeyFile(path, true)
	if err != nil {
		return nil, err
	}
	defer wipe(data)
	k, err := ParseIdentityPrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// SaveLinkKey writes k to path (mode 0600, atomically, replacing any existing
// file).
func SaveLinkKey(path string, k *LinkPrivateKey) error {
	data, err := MarshalLinkPrivateKeyPEM(k)
	if err != nil {
		return fmt.Errorf("keys: save link key %s: %w", path, err)
	}
	defer wipe(data)
	return writeFileAtomic(path, data, PrivateKeyFileMode)
}

// LoadLinkKey reads a key written by SaveLinkKey.
func LoadLinkKey(path string) (*LinkPrivateKey, error) {
	data, err := readKeyFile(path, true)
	if err != nil {
		return nil, err
	}
	defer wipe(data)
	k, err := ParseLinkPrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// SaveSphinxKey writes k to path (mode 0600, atomically, replacing any
// existing file).
func SaveSphinxKey(path string, k *SphinxPrivateKey) error {
	data, err := MarshalSphinxPrivateKeyPEM(k)
	if err != nil {
		return fmt.Errorf("keys: save sphinx key %s: %w", path, err)
	}
	defer wipe(data)
	return writeFileAtomic(path, data, PrivateKeyFileMode)
}

// LoadSphinxKey reads a key written by SaveSphinxKey.
func LoadSphinxKey(path string) (*SphinxPrivateKey, error) {
	data, err := readKeyFile(path, true)
	if err != nil {
		return nil, err
	}
	defer wipe(data)
	k, err := ParseSphinxPrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// SaveIdentityPublicKey writes k to path (mode 0644, atomically, replacing
// any existing file).
func SaveIdentityPublicKey(path string, k IdentityPublicKey) error {
	return writeFileAtomic(path, MarshalIdentityPublicKeyPEM(k), PublicKeyFileMode)
}

// LoadIdentityPublicKey reads a key written by SaveIdentityPublicKey.
func LoadIdentityPublicKey(path string) (IdentityPublicKey, error) {
	data, err := readKeyFile(path, false)
	if err != nil {
		return IdentityPublicKey{}, err
	}
	k, err := ParseIdentityPublicKeyPEM(data)
	if err != nil {
		return IdentityPublicKey{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// SaveLinkPublicKey writes k to path (mode 0644, atomically, replacing any
// existing file).
func SaveLinkPublicKey(path string, k LinkPublicKey) error {
	return writeFileAtomic(path, MarshalLinkPublicKeyPEM(k), PublicKeyFileMode)
}

// LoadLinkPublicKey reads a key written by SaveLinkPublicKey.
func LoadLinkPublicKey(path string) (LinkPublicKey, error) {
	data, err := readKeyFile(path, false)
	if err != nil {
		return LinkPublicKey{}, err
	}
	k, err := ParseLinkPublicKeyPEM(data)
	if err != nil {
		return LinkPublicKey{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// SaveSphinxPublicKey writes k to path (mode 0644, atomically, replacing any
// existing file).
func SaveSphinxPublicKey(path string, k SphinxPublicKey) error {
	return writeFileAtomic(path, MarshalSphinxPublicKeyPEM(k), PublicKeyFileMode)
}

// LoadSphinxPublicKey reads a key written by SaveSphinxPublicKey.
func LoadSphinxPublicKey(path string) (SphinxPublicKey, error) {
	data, err := readKeyFile(path, false)
	if err != nil {
		return SphinxPublicKey{}, err
	}
	k, err := ParseSphinxPublicKeyPEM(data)
	if err != nil {
		return SphinxPublicKey{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// readKeyFile reads a key file after checking that it is a regular file no
// larger than MaxFileSize and, for private keys, that only its owner can
// access it. Errors name the path.
func readKeyFile(path string, private bool) ([]byte, error) {
	// Stat before opening so that a FIFO or device at path is refused
	// without blocking in open or read.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keys: %s: not a regular file (mode %s): %w", path, fi.Mode(), ErrMalformedFile)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer f.Close()
	// Check the file actually opened, in case path was replaced meanwhile.
	fi, err = f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keys: %s: not a regular file (mode %s): %w", path, fi.Mode(), ErrMalformedFile)
	}
	if perm := fi.Mode().Perm(); private && perm&0o077 != 0 {
		return nil, fmt.Errorf("keys: private key file %s has mode %#o, which lets group or others access it (%w); fix it with: chmod 600 %s",
			path, perm, ErrInsecurePermissions, shellQuote(path))
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("keys: %s: file is %d bytes, over the limit of %d for a key file: %w", path, fi.Size(), MaxFileSize, ErrMalformedFile)
	}
	// The limit also holds if the file grows after Stat.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		wipe(data)
		return nil, fmt.Errorf("keys: %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		wipe(data)
		return nil, fmt.Errorf("keys: %s: file is over the limit of %d bytes for a key file: %w", path, MaxFileSize, ErrMalformedFile)
	}
	return data, nil
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old file or the complete new one: temporary file in the same directory,
// fsync, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// CreateTemp creates the file with mode 0600, so a private key is never
	// readable by others, not even before the Chmod below.
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("keys: write %s: %w", path, err)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// shellQuote quotes path for the chmod hint when it has characters a shell
// would interpret.
func shellQuote(path string) string {
	safe := true
	for _, c := range path {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._-+,:@%", c)) {
			safe = false
			break
		}
	}
	if safe && path != "" {
		return path
	}
	return "'" + strings.ReplaceAll(path, "'", `'\''`) + "'"
}
