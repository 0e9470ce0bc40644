// Package box owns the files of a ballot box (docs/spec/vote.md §11.8): the box's board-signing
// key, and per election its parameters, its append-only board file and a pending close
// request. The provider's vote service is the only writer of a board (Board); the operator's
// tools install parameters, request a close and read boards with the functions of this
// package, on the same directory.
//
// Layout of the directory (the provider's data_dir/vote):
//
//	box.key            the box's Ed25519 board-signing key (0600), created on first use
//	ID/params.bin      the election's board.Params (installed by Install)
//	ID/board.bin       the board file (board.ParseBoard), appended and fsync'd by Board
//	ID/close.bin       a board.Close waiting to be appended (RequestClose)
package box

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
)

// File names in the directory.
const (
	KeyFile    = "box.key"
	ParamsFile = "params.bin"
	BoardFile  = "board.bin"
	CloseFile  = "close.bin"
)

// ErrUnknownElection is returned for an election without parameters in the directory.
var ErrUnknownElection = errors.New("box: unknown election")

// Key loads the box key of dir, creating dir (0700) and the key (0600) when missing. Two
// processes creating it at once end up with the same key (the file is linked into place).
func Key(dir string) (*keys.IdentityPrivateKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("box: %w", err)
	}
	path := filepath.Join(dir, KeyFile)
	k, err := keys.LoadIdentityKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d", KeyFile, os.Getpid()))
	// SaveIdentityKey writes atomically; Link then refuses to replace a key another process
	// created in the meantime, and we load that one.
	k, err = keys.GenerateIdentityKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := keys.SaveIdentityKey(tmp, k); err != nil {
		k.Wipe()
		return nil, err
	}
	k.Wipe()
	lerr := os.Link(tmp, path)
	os.Remove(tmp)
	if lerr != nil && !errors.Is(lerr, fs.ErrExist) {
		return nil, fmt.Errorf("box: %w", lerr)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return keys.LoadIdentityKey(path)
}

func electionDir(dir, id string) (string, error) {
	if !board.ElectionIDPattern.MatchString(id) {
		return "", fmt.Errorf("box: election id %q is not of the form %s", id, board.ElectionIDPattern)
	}
	return filepath.Join(dir, id), nil
}

// Install writes p as election p.ElectionID's parameters. It refuses parameters whose BoxKey is
// not this box's key, and different parameters for an election already installed (installing
// the same bytes again does nothing).
func Install(dir string, p *board.Params) error {
	b, err := p.Marshal()
	if err != nil {
		return err
	}
	k, err := Key(dir)
	if err != nil {
		return err
	}
	pub := k.Public()
	k.Wipe()
	if !pub.Equal(p.BoxKey) {
		return fmt.Errorf("box: the parameters name box key %s, this box's key is %s", p.BoxKey, pub)
	}
	ed, err := electionDir(dir, p.ElectionID)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(filepath.Join(ed, ParamsFile)); err == nil {
		if bytes.Equal(old, b) {
			return nil
		}
		return fmt.Errorf("box: election %q is already installed with other parameters", p.ElectionID)
	}
	if err := os.MkdirAll(ed, 0o700); err != nil {
		return fmt.Errorf("box: %w", err)
	}
	return writeAtomic(filepath.Join(ed, ParamsFile), b)
}

// Params reads the parameters of election id.
func Params(dir, id string) (*board.Params, error) {
	ed, err := electionDir(dir, id)
	if err != nil {
		return nil, err
	}
	b, err := readLimited(filepath.Join(ed, ParamsFile), board.MaxParamsSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %q", ErrUnknownElection, id)
	}
	if err != nil {
		return nil, err
	}
	p, err := board.ParseParams(b)
	if err != nil {
		return nil, fmt.Errorf("box: %s: %w", filepath.Join(ed, ParamsFile), err)
	}
	return p, nil
}

// Elections lists the elections installed in dir.
func Elections(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("box: %w", err)
	}
	var ids []string
	for _, de := range des {
		if de.IsDir() && board.ElectionIDPattern.MatchString(de.Name()) {
			if _, err := os.Stat(filepath.Join(dir, de.Name(), ParamsFile)); err == nil {
				ids = append(ids, de.Name())
			}
		}
	}
	return ids, nil
}

// RequestClose leaves c for the vote service, which verifies it and appends the close entry at
// or after the end of the voting period. c must be valid for the election's parameters.
func RequestClose(dir string, c *board.Close) error {
	p, err := Params(dir, c.ElectionID)
	if err != nil {
		return err
	}
	if err := c.Verify(p); err != nil {
		return err
	}
	ed, _ := electionDir(dir, c.ElectionID)
	return writeAtomic(filepath.Join(ed, CloseFile), c.Marshal())
}

// PendingClose returns the close request of election id, or nil.
func PendingClose(dir, id string) (*board.Close, error) {
	ed, err := electionDir(dir, id)
	if err != nil {
		return nil, err
	}
	b, err := readLimited(filepath.Join(ed, CloseFile), board.MaxCloseSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return board.ParseClose(b)
}

// ReadBoard reads the board of election id as far as it is complete: a reader running beside
// the writer may see an append in progress, whose incomplete frame it leaves out. It checks
// the format of every entry, not the rules (use board.VerifyBoard or a board.Checker).
func ReadBoard(dir, id string) ([]*board.Entry, error) {
	ed, err := electionDir(dir, id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(ed, BoardFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("box: %w", err)
	}
	defer f.Close()
	es, _, err := readEntries(f)
	if err != nil && !errors.Is(err, board.ErrTornFrame) {
		return nil, fmt.Errorf("box: %s: %w", f.Name(), err)
	}
	return es, nil
}

// readEntries reads framed entries up to the end or the first error, returning the entries
// and the offset where the complete ones end.
func readEntries(r io.Reader) ([]*board.Entry, int64, error) {
	var es []*board.Entry
	var off int64
	for {
		e, n, err := board.ReadEntry(r)
		if err == io.EOF {
			return es, off, nil
		}
		if err != nil {
			return es, off, fmt.Errorf("board entry %d: %w", len(es), err)
		}
		if len(es) == board.MaxEntries {
			return es, off, fmt.Errorf("%w: more than %d entries", board.ErrTooLarge, board.MaxEntries)
		}
		es = append(es, e)
		off += int64(n)
	}
}

func readLimited(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%w: %s is over %d bytes", board.ErrTooLarge, path, limit)
	}
	return b, nil
}

// writeAtomic writes data to path through a temporary file, fsync and rename, then fsyncs the
// directory.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("box: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("box: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("box: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("box: sync %s: %w", dir, err)
	}
	return nil
}
