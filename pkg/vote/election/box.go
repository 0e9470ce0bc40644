package election

import (
	"bytes"
	"fmt"
	"path/filepath"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// maxBoardFile bounds board.bin: board.MaxEntries entries of the largest size with their
// length prefixes.
const maxBoardFile = int64(board.MaxEntries) * int64(board.FramePrefix+board.MaxEntrySize)

// BoxParams returns what the ballot box needs for the election (§12.4), from the definition
// and the key generation's result.
func BoxParams(sd *SignedDefinition, kr *KeyGenResult) *board.Params {
	d := &sd.Definition
	p := &board.Params{
		ElectionID:   d.ID,
		ElectionHash: sd.Hash(),
		PublicKey:    kr.PublicKey,
		Voters:       append([]keys.IdentityPublicKey(nil), d.Voters...),
		Threshold:    d.Threshold,
		Opens:        d.Opens,
		Closes:       d.Closes,
		BoxKey:       d.BoxKey,
	}
	for _, q := range d.Questions {
		p.Questions = append(p.Questions, len(q.Choices))
	}
	for _, t := range d.Trustees {
		p.Trustees = append(p.Trustees, t.SigningKey)
	}
	return p
}

// LoadParams recomputes the election's board parameters from the record's definition and key
// generation messages.
func LoadParams(record string) (*SignedDefinition, *KeyGenResult, *board.Params, error) {
	sd, err := LoadDefinition(record)
	if err != nil {
		return nil, nil, nil, err
	}
	kg, err := LoadKeyGen(filepath.Join(record, KeyGenDir), sd)
	if err != nil {
		return nil, nil, nil, err
	}
	kr, err := kg.Result(&sd.Definition)
	if err != nil {
		return nil, nil, nil, err
	}
	return sd, kr, BoxParams(sd, kr), nil
}

// verifyBoard checks params.bin and the board, and returns the board's input lists.
func verifyBoard(record string, sd *SignedDefinition, kr *KeyGenResult) ([][]verificatum.Ciphertext, []error) {
	p := BoxParams(sd, kr)
	want, err := p.Marshal()
	if err != nil {
		return nil, []error{fmt.Errorf("params: %w", err)}
	}
	got, err := readLimited(filepath.Join(record, ParamsFile), int64(len(want)))
	if err != nil {
		return nil, []error{fmt.Errorf("params: %w", err)}
	}
	if !bytes.Equal(got, want) {
		return nil, []error{fmt.Errorf("params: %s differs from the parameters recomputed from the definition and the key generation", ParamsFile)}
	}
	b, err := readLimited(filepath.Join(record, BoardFile), maxBoardFile)
	if err != nil {
		return nil, []error{fmt.Errorf("board: %w", err)}
	}
	entries, err := board.ParseBoard(b)
	if err != nil {
		return nil, []error{fmt.Errorf("board: %w", err)}
	}
	if err := board.VerifyBoard(p, entries); err != nil {
		return nil, []error{err}
	}
	lists, err := board.InputLists(p, entries)
	if err != nil {
		return nil, []error{fmt.Errorf("board: %w", err)}
	}
	if len(lists) != len(sd.Definition.Questions) {
		return nil, []error{fmt.Errorf("board: %d input lists for %d questions", len(lists), len(sd.Definition.Questions))}
	}
	return lists, nil
}

// BoardInputs verifies the record's params and board and returns the input of the first
// mixer, one list per question.
func BoardInputs(record string, sd *SignedDefinition, kr *KeyGenResult) ([][]verificatum.Ciphertext, error) {
	lists, errs := verifyBoard(record, sd, kr)
	if len(errs) > 0 {
		return nil, &VerifyError{Failures: errs}
	}
	return lists, nil
}
