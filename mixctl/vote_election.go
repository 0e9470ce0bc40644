package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/election"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// The election official's, trustees' and verifier's commands (docs/spec/vote.md §12). Every
// step reads and writes the record directory (--record) and never replaces a file.

func init() {
	addVoteCommand(newVoteKeygenCmd)
	addVoteCommand(newVoteCreateCmd)
	addVoteCommand(newVoteTrusteeCmd)
	addVoteCommand(newVoteParamsCmd)
	addVoteCommand(newVoteCloseSignCmd)
	addVoteCommand(newVoteMixCmd)
	addVoteCommand(newVoteDecryptCmd)
	addVoteCommand(newVoteVmnDecryptCmd)
	addVoteCommand(newVoteTallyCmd)
	addVoteCommand(newVoteVerifyCmd)
}

// electionProgress prints one line per finished step with the time since the command started.
func electionProgress(w io.Writer) election.Progress {
	start := time.Now()
	return func(msg string) {
		fmt.Fprintf(w, "[%7.1fs] %s\n", time.Since(start).Seconds(), msg)
	}
}

func requireFlag(name, v string) error {
	if v == "" {
		return fmt.Errorf("--%s is required", name)
	}
	return nil
}

func newVoteKeygenCmd() *cobra.Command {
	var out string
	var trusteeKeys bool
	c := &cobra.Command{
		Use:   "keygen --out FILE [--trustee]",
		Short: "Create an Ed25519 key for an official, trustee or voter (and a trustee's HPKE key)",
		Long: `Writes an Ed25519 signing key to FILE (mode 0600) and its public key to FILE.pub,
and prints the public key. The election official, each trustee and each voter (whose
public key is its credential on the voter list) needs one.

With --trustee it also writes FILE.hpke (mode 0600), the X25519 key that the other
trustees encrypt key shares to, and prints its public key for the definition's
"encryption_key". Existing files are never replaced.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag("out", out); err != nil {
				return err
			}
			for _, p := range []string{out, out + ".pub", out + ".hpke"} {
				if _, err := os.Stat(p); err == nil {
					return fmt.Errorf("%s exists; refusing to replace a key", p)
				}
			}
			k, err := keys.GenerateIdentityKey(rand.Reader)
			if err != nil {
				return err
			}
			defer k.Wipe()
			if err := keys.SaveIdentityKey(out, k); err != nil {
				return err
			}
			if err := keys.SaveIdentityPublicKey(out+".pub", k.Public()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signing key: %s\n", k.Public())
			if trusteeKeys {
				ek, err := election.GenerateEncryptionKey(rand.Reader)
				if err != nil {
					return err
				}
				defer ek.Wipe()
				if err := election.SaveEncryptionKey(out+".hpke", ek); err != nil {
					return err
				}
				txt, _ := ek.Public().MarshalText()
				fmt.Fprintf(cmd.OutOrStdout(), "encryption key: %s\n", txt)
			}
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "file for the private key (FILE.pub, FILE.hpke beside it)")
	c.Flags().BoolVar(&trusteeKeys, "trustee", false, "also create the trustee's HPKE encryption key")
	return c
}

func newVoteCreateCmd() *cobra.Command {
	var keyPath, defPath, record string
	c := &cobra.Command{
		Use:   "create --key OFFICIAL.key --definition election.json --record DIR",
		Short: "Sign an election definition and start its record directory",
		Long: `Reads the definition (JSON with the fields of docs/spec/vote.md §12.1: version 1,
id, title, questions, voters, trustees, threshold, mixers, opens, closes, provider,
box_key), checks it, signs it with the official's key and writes DIR/definition.json.
Prints the election hash. DIR must not hold a definition yet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for n, v := range map[string]string{"key": keyPath, "definition": defPath, "record": record} {
				if err := requireFlag(n, v); err != nil {
					return err
				}
			}
			b, err := readElectionFile(defPath, election.MaxDefinitionSize)
			if err != nil {
				return err
			}
			var d election.Definition
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&d); err != nil {
				return fmt.Errorf("%s: %w", defPath, err)
			}
			k, err := keys.LoadIdentityKey(keyPath)
			if err != nil {
				return err
			}
			defer k.Wipe()
			sd, err := election.Sign(&d, k)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Join(record, election.KeyGenDir), 0o755); err != nil {
				return err
			}
			if err := writeElectionFile(filepath.Join(record, election.DefinitionFile), sd.Bytes(), 0o644); err != nil {
				return err
			}
			h := sd.Hash()
			fmt.Fprintf(cmd.OutOrStdout(), "election %s: hash %x\n", d.ID, h)
			return nil
		},
	}
	c.Flags().StringVar(&keyPath, "key", "", "the official's signing key")
	c.Flags().StringVar(&defPath, "definition", "", "the unsigned definition (JSON)")
	c.Flags().StringVar(&record, "record", "", "the record directory")
	return c
}

func readElectionFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s exceeds %d bytes", path, limit)
	}
	return b, nil
}

// writeElectionFile creates path and refuses to replace an existing file.
func writeElectionFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; refusing to replace it", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// trusteeFlags are the flags of the trustee steps.
type trusteeFlags struct {
	record, key, hpke, state string
	index                    int
}

func (t *trusteeFlags) add(c *cobra.Command, needHPKE, needState bool) {
	c.Flags().StringVar(&t.record, "record", "", "the record directory")
	c.Flags().IntVar(&t.index, "index", 0, "this trustee's index (1..n, its position in the definition; default: found from --key)")
	c.Flags().StringVar(&t.key, "key", "", "this trustee's signing key")
	if needHPKE {
		c.Flags().StringVar(&t.hpke, "hpke", "", "this trustee's HPKE key (default: KEY.hpke)")
	}
	if needState {
		c.Flags().StringVar(&t.state, "state", "", "this trustee's private directory (mode 0700) for its dealt shares and key share")
	}
}

func (t *trusteeFlags) load(needState bool) (*election.SignedDefinition, *keys.IdentityPrivateKey, error) {
	if err := requireFlag("record", t.record); err != nil {
		return nil, nil, err
	}
	if err := requireFlag("key", t.key); err != nil {
		return nil, nil, err
	}
	if needState {
		if err := requireFlag("state", t.state); err != nil {
			return nil, nil, err
		}
	}
	sd, err := election.LoadDefinition(t.record)
	if err != nil {
		return nil, nil, err
	}
	k, err := keys.LoadIdentityKey(t.key)
	if err != nil {
		return nil, nil, err
	}
	if t.index == 0 {
		if t.index = sd.Definition.TrusteeIndex(k.Public()); t.index == 0 {
			k.Wipe()
			return nil, nil, fmt.Errorf("%s is the signing key of no trustee of the election", t.key)
		}
	}
	if sd.Definition.TrusteeIndex(k.Public()) != t.index {
		k.Wipe()
		return nil, nil, fmt.Errorf("%s is not the signing key of trustee %d in the definition", t.key, t.index)
	}
	return sd, k, nil
}

func (t *trusteeFlags) hpkeKey() (*election.EncryptionPrivateKey, error) {
	p := t.hpke
	if p == "" {
		p = t.key + ".hpke"
	}
	return election.LoadEncryptionKey(p)
}

func (t *trusteeFlags) dealerSharesPath() string { return filepath.Join(t.state, "dealer-shares.bt") }
func (t *trusteeFlags) keySharePath() string     { return filepath.Join(t.state, "key-share.bt") }

func newVoteTrusteeCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "trustee",
		Short: "Threshold key generation rounds: deal, complain, answer, finish",
		Long: `The trustees create the election key in three rounds over the record directory
(docs/spec/vote.md §12.2); each round needs every trustee's files of the round before:
  1. mixctl vote trustee deal     --record DIR --index I --key T.key --state STATE
  2. mixctl vote trustee complain --record DIR --index I --key T.key
  3. mixctl vote trustee answer   --record DIR --index I --key T.key --state STATE
  4. mixctl vote trustee finish   --record DIR --index I --key T.key --state STATE
STATE is the trustee's private directory: it keeps the shares it dealt and, after
'finish', its key share (mode 0600). 'finish' prints the election key.`,
	}
	c.AddCommand(newTrusteeDealCmd(), newTrusteeComplainCmd(), newTrusteeAnswerCmd(), newTrusteeFinishCmd())
	return c
}

func newTrusteeDealCmd() *cobra.Command {
	f := &trusteeFlags{}
	c := &cobra.Command{
		Use:   "deal",
		Short: "Round 1: publish this trustee's dealing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sd, k, err := f.load(true)
			if err != nil {
				return err
			}
			defer k.Wipe()
			if err := os.MkdirAll(f.state, 0o700); err != nil {
				return err
			}
			out := filepath.Join(f.record, election.KeyGenDir, fmt.Sprintf("dealing-%02d.bt", f.index))
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("%s exists; this trustee has dealt already", out)
			}
			msg, shares, err := election.Deal(rand.Reader, sd, f.index, k)
			if err != nil {
				return err
			}
			defer func() {
				for _, s := range shares {
					s.Wipe()
				}
			}()
			if err := election.SaveDealerShares(f.dealerSharesPath(), sd, f.index, shares); err != nil {
				return fmt.Errorf("save dealt shares: %w", err)
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			if err := writeElectionFile(out, msg, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", out)
			return nil
		},
	}
	f.add(c, false, true)
	return c
}

func loadKeyGen(record string, sd *election.SignedDefinition) (*election.KeyGen, error) {
	return election.LoadKeyGen(filepath.Join(record, election.KeyGenDir), sd)
}

func newTrusteeComplainCmd() *cobra.Command {
	f := &trusteeFlags{}
	c := &cobra.Command{
		Use:   "complain",
		Short: "Round 2: check this trustee's shares and publish its complaints (possibly none)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sd, k, err := f.load(false)
			if err != nil {
				return err
			}
			defer k.Wipe()
			ek, err := f.hpkeKey()
			if err != nil {
				return err
			}
			defer ek.Wipe()
			kg, err := loadKeyGen(f.record, sd)
			if err != nil {
				return err
			}
			n := len(sd.Definition.Trustees)
			var dealings []*election.DealingMessage
			for i := 1; i <= n; i++ {
				if m, ok := kg.Dealings[i]; ok {
					dealings = append(dealings, m)
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "trustee %d has not dealt: it will not be qualified\n", i)
				}
			}
			msg, reasons, err := election.Complain(sd, dealings, f.index, ek, k)
			if err != nil {
				return err
			}
			for _, r := range reasons {
				fmt.Fprintf(cmd.OutOrStdout(), "complaint: %v\n", r)
			}
			out := filepath.Join(f.record, election.KeyGenDir, fmt.Sprintf("complaints-%02d.bt", f.index))
			if err := writeElectionFile(out, msg, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d complaints)\n", out, len(reasons))
			return nil
		},
	}
	f.add(c, true, false)
	return c
}

func newTrusteeAnswerCmd() *cobra.Command {
	f := &trusteeFlags{}
	c := &cobra.Command{
		Use:   "answer",
		Short: "Round 3: reveal the shares other trustees complained about (if any)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sd, k, err := f.load(true)
			if err != nil {
				return err
			}
			defer k.Wipe()
			kg, err := loadKeyGen(f.record, sd)
			if err != nil {
				return err
			}
			against := 0
			for _, list := range kg.Complaints {
				for _, i := range list {
					if i == f.index {
						against++
					}
				}
			}
			if against == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "no complaint against trustee %d: nothing to answer\n", f.index)
				return nil
			}
			dealer, shares, err := election.LoadDealerShares(f.dealerSharesPath(), sd)
			if err != nil {
				return err
			}
			defer func() {
				for _, s := range shares {
					s.Wipe()
				}
			}()
			if dealer != f.index {
				return fmt.Errorf("%s holds the shares of trustee %d", f.dealerSharesPath(), dealer)
			}
			msg, err := election.Answer(sd, kg, f.index, shares, k)
			if err != nil {
				return err
			}
			out := filepath.Join(f.record, election.KeyGenDir, fmt.Sprintf("answer-%02d.bt", f.index))
			if err := writeElectionFile(out, msg, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d shares revealed)\n", out, against)
			return nil
		},
	}
	f.add(c, false, true)
	return c
}

func newTrusteeFinishCmd() *cobra.Command {
	f := &trusteeFlags{}
	c := &cobra.Command{
		Use:   "finish",
		Short: "Compute this trustee's key share from the published rounds and print the election key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sd, k, err := f.load(true)
			if err != nil {
				return err
			}
			k.Wipe()
			ek, err := f.hpkeKey()
			if err != nil {
				return err
			}
			defer ek.Wipe()
			kg, err := loadKeyGen(f.record, sd)
			if err != nil {
				return err
			}
			xj, res, err := election.Finish(sd, kg, f.index, ek)
			if err != nil {
				return err
			}
			defer xj.Wipe()
			if err := election.SaveKeyShare(f.keySharePath(), sd, f.index, xj); err != nil {
				return fmt.Errorf("save key share: %w", err)
			}
			for i, why := range res.Disqualified {
				fmt.Fprintf(cmd.OutOrStdout(), "trustee %d disqualified: %s\n", i, why)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key share saved to %s\nelection key: %x\n", f.keySharePath(), res.PublicKey.Tree().Encode())
			return nil
		},
	}
	f.add(c, true, true)
	return c
}

func newVoteParamsCmd() *cobra.Command {
	var record string
	c := &cobra.Command{
		Use:   "params --record DIR",
		Short: "Write the ballot box's parameters (DIR/params.bin) once the key generation is done",
		Long: `Recomputes the qualified set and the election key from the published key generation
messages and writes DIR/params.bin, the board.Params file the ballot box is opened with.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag("record", record); err != nil {
				return err
			}
			_, _, p, err := election.LoadParams(record)
			if err != nil {
				return err
			}
			b, err := p.Marshal()
			if err != nil {
				return err
			}
			out := filepath.Join(record, election.ParamsFile)
			if err := writeElectionFile(out, b, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", out)
			return nil
		},
	}
	c.Flags().StringVar(&record, "record", "", "the record directory")
	return c
}

func newVoteCloseSignCmd() *cobra.Command {
	f := &trusteeFlags{}
	var out string
	c := &cobra.Command{
		Use:   "close-sign --record DIR --index I --key T.key --out FILE",
		Short: "Sign this trustee's agreement to close the ballot box",
		Long: `Signs board.CloseMessage for the election's parameters (recomputed from the
definition and the key generation) and writes the trustee's close signature
(board.CloseSignature) to FILE. The ballot box closes with at least threshold such
signatures.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag("out", out); err != nil {
				return err
			}
			_, k, err := f.load(false)
			if err != nil {
				return err
			}
			defer k.Wipe()
			_, _, p, err := election.LoadParams(f.record)
			if err != nil {
				return err
			}
			sig, err := board.SignClose(p, f.index, k)
			if err != nil {
				return err
			}
			if err := writeElectionFile(out, sig.Marshal(), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trustee %d: close signature written to %s\n", f.index, out)
			return nil
		},
	}
	f.add(c, false, false)
	c.Flags().StringVar(&out, "out", "", "file for the signature")
	return c
}

func newVoteMixCmd() *cobra.Command {
	f := &trusteeFlags{}
	var position int
	c := &cobra.Command{
		Use:   "mix --record DIR --position K --index I --key T.key",
		Short: "Shuffle and prove, as mixer K, every question's list; adds to DIR/mix/qQQ",
		Long: `Mixer K (the K-th entry of the definition's "mixers") takes the board's input lists
(K = 1) or mixer K-1's output, checked first, adds its proof to each question's Verificatum
proof directory DIR/mix/qQQ (which holds every mixer's, in order) and signs what it added
in DIR/mix/mixer-KK.bt. Run again after an interruption, it replaces what it had not
signed. Progress goes to stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sd, k, err := f.load(false)
			if err != nil {
				return err
			}
			defer k.Wipe()
			d := &sd.Definition
			if position < 1 || position > len(d.Mixers) {
				return fmt.Errorf("--position must be 1..%d", len(d.Mixers))
			}
			if d.Mixers[position-1] != f.index {
				return fmt.Errorf("mixer %d is trustee %d, not trustee %d", position, d.Mixers[position-1], f.index)
			}
			progress := electionProgress(cmd.ErrOrStderr())
			var in [][]verificatum.Ciphertext
			var pk verificatum.PublicKey
			if position == 1 {
				sd2, kr, _, err := election.LoadParams(f.record)
				if err != nil {
					return err
				}
				if in, err = election.BoardInputs(f.record, sd2, kr); err != nil {
					return err
				}
				pk = kr.PublicKey
				progress("board verified: input lists read")
			} else {
				// The previous mixers' proofs are checked before building on them: a mixer
				// that mixes a list that is not the board's would lend it its name.
				r, lists, err := election.VerifyPrefix(f.record, position-1, progress)
				if err != nil {
					return err
				}
				in, pk = lists, r.KeyGen.PublicKey
			}
			if _, err := election.Mix(rand.Reader, sd, pk, position, in, f.record, k, progress); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", election.MixerFile(f.record, position))
			return nil
		},
	}
	f.add(c, false, false)
	c.Flags().IntVar(&position, "position", 0, "this mixer's position in the definition's mixers (1..K)")
	return c
}

// decryptionInputs is what a trustee's decryption step needs: the election, its identity key,
// its key share, and the final ciphertexts after every mixer, verified.
type decryptionInputs struct {
	sd       *election.SignedDefinition
	k        *keys.IdentityPrivateKey
	j        int
	xj       *group.Scalar
	final    [][]verificatum.Ciphertext
	progress election.Progress
}

func (d *decryptionInputs) wipe() {
	d.k.Wipe()
	d.xj.Wipe()
}

// loadForDecryption loads the trustee's state and key share and verifies the board and every
// mixer before any decryption step (decrypt and vmn-decrypt).
func (t *trusteeFlags) loadForDecryption(progressOut io.Writer) (*decryptionInputs, error) {
	sd, k, err := t.load(true)
	if err != nil {
		return nil, err
	}
	progress := electionProgress(progressOut)
	_, final, err := election.VerifyMixing(t.record, progress)
	if err != nil {
		k.Wipe()
		return nil, err
	}
	j, xj, err := election.LoadKeyShare(t.keySharePath(), sd)
	if err != nil {
		k.Wipe()
		return nil, err
	}
	if j != t.index {
		k.Wipe()
		xj.Wipe()
		return nil, fmt.Errorf("%s is the key share of trustee %d", t.keySharePath(), j)
	}
	return &decryptionInputs{sd: sd, k: k, j: j, xj: xj, final: final, progress: progress}, nil
}

func newVoteDecryptCmd() *cobra.Command {
	f := &trusteeFlags{}
	c := &cobra.Command{
		Use:   "decrypt --record DIR --index I --key T.key --state STATE",
		Short: "Verify the board and every mixer, then publish this trustee's decryption shares",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := f.loadForDecryption(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer d.wipe()
			sd, k, j, xj, final, progress := d.sd, d.k, d.j, d.xj, d.final, d.progress
			out := filepath.Join(f.record, election.DecryptDir, election.ShareName(j))
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("%s exists; this trustee has decrypted already", out)
			}
			msg, err := election.Decrypt(rand.Reader, sd, j, xj, final, k, progress)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			if err := writeElectionFile(out, msg, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", out)
			return nil
		},
	}
	f.add(c, false, true)
	return c
}

func newVoteVmnDecryptCmd() *cobra.Command {
	f := &trusteeFlags{}
	c := &cobra.Command{
		Use:   "vmn-decrypt --record DIR --index I --key T.key --state STATE",
		Short: "Take this trustee's next step of the decryption in Verificatum's format (three rounds)",
		Long: `The decryption in Verificatum's format (docs/spec/vote.md §12.6) lets an official check
the tally with Verificatum's vmnv -mix. Every trustee (all n, not only t) runs this three
times, each round after every trustee finished the previous one: 1. its decryption factors,
2. its commitments, 3. its replies. Each run verifies the mixing first, does the next round
and says what it did or whom it waits for. The run that writes the last reply completes
every question's directory mix/qQQ (type "mixing"), checked as vmnv -mix checks it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := f.loadForDecryption(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer d.wipe()
			sd, j, xj, final, progress := d.sd, d.j, d.xj, d.final, d.progress
			msg, err := election.VmnDecryptStep(rand.Reader, sd, j, xj, final, f.record, f.state)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trustee %d: %s\n", j, msg)
			if ok, _ := election.VmnDecryptionComplete(f.record, sd); ok && strings.HasPrefix(msg, "round 3") {
				if err := election.FinishVmnDecryption(f.record, sd, final, progress); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "every trustee replied: the proof directories are complete for vmnv -mix")
			}
			return nil
		},
	}
	f.add(c, false, true)
	return c
}

func newVoteTallyCmd() *cobra.Command {
	var record string
	c := &cobra.Command{
		Use:   "tally --record DIR",
		Short: "Combine the decryption shares and write DIR/tally.json",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag("record", record); err != nil {
				return err
			}
			out := filepath.Join(record, election.TallyFile)
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("%s exists; refusing to replace the tally", out)
			}
			t, err := election.TallyRecord(record, electionProgress(cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			b, err := t.Marshal()
			if err != nil {
				return err
			}
			if err := writeElectionFile(out, b, 0o644); err != nil {
				return err
			}
			printTally(cmd.OutOrStdout(), t)
			return nil
		},
	}
	c.Flags().StringVar(&record, "record", "", "the record directory")
	return c
}

func printTally(w io.Writer, t *election.Tally) {
	fmt.Fprintf(w, "election %s (%s)\n", t.Election, t.ElectionHash)
	for q, qt := range t.Questions {
		fmt.Fprintf(w, "question %d: %s\n", q, qt.Text)
		for c, n := range qt.Counts {
			fmt.Fprintf(w, "  %6d  %s\n", n, qt.Choices[c])
		}
		if qt.Invalid > 0 {
			fmt.Fprintf(w, "  %6d  (invalid)\n", qt.Invalid)
		}
	}
}

func newVoteVerifyCmd() *cobra.Command {
	var record, official string
	c := &cobra.Command{
		Use:   "verify --record DIR [--official KEY]",
		Short: "Check a complete election record and say exactly what failed",
		Long: `Checks the record directory (docs/spec/vote.md §12.8): the definition's signature,
the key generation, the board (hash chain, signatures, every ballot's proof and
eligibility, the closing), every mixer's proofs of shuffle and that each mixer's input
is the previous output, every trustee's decryption shares, and the tally. With
--official it also requires the definition to be signed by that key. Progress goes to
stderr; the first failure is reported first. Exit status 0 only if everything holds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag("record", record); err != nil {
				return err
			}
			r, err := election.Verify(record, electionProgress(cmd.ErrOrStderr()))
			if err != nil {
				return fmt.Errorf("verification FAILED: %w", err)
			}
			if official != "" {
				want, err := keys.ParseIdentityPublicKey(official)
				if err != nil {
					return fmt.Errorf("--official: %w", err)
				}
				if !want.Equal(r.Definition.Official) {
					return fmt.Errorf("verification FAILED: the definition is signed by %s, not by %s", r.Definition.Official, want)
				}
			}
			printTally(cmd.OutOrStdout(), r.Tally)
			for _, w := range r.Warnings {
				if errors.Is(w, election.ErrNoVmnDecryption) {
					fmt.Fprintf(cmd.OutOrStdout(), "warning: %v\n", w)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "warning: %v (routed around: enough valid shares remain)\n", w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "record verified: %v ballots per question, official %s\n", r.Ballots, r.Definition.Official)
			return nil
		},
	}
	c.Flags().StringVar(&record, "record", "", "the record directory")
	c.Flags().StringVar(&official, "official", "", "the official's public key the definition must be signed with")
	return c
}
