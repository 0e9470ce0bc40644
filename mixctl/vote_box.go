package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board/box"
)

func init() {
	addVoteCommand(newVoteBoxKeyCmd)
	addVoteCommand(newVoteOpenCmd)
	addVoteCommand(newVoteCloseCmd)
	addVoteCommand(newVoteBoardCmd)
	addVoteCommand(newVoteCastCmd)
	addVoteCommand(newVoteReceiptCmd)
}

// boxDirHelp explains how the operator's commands reach the ballot box.
const boxDirHelp = `The ballot box is the "vote" service of a provider ([vote] enabled = true in its
configuration). Its files live in the box directory, data_dir/vote of the provider
unless [vote] dir says otherwise: the box key, and per election its parameters, its
board and a pending close request (docs/spec/vote.md §11.8). The operator's commands
(box-key, open, close, board) work on that directory directly, on the provider's
machine, as the user mixd runs as; they work whether or not mixd is running, and the
running service picks up what they leave there.`

// maxBoxFile bounds the files these commands read: the largest of params, board entries
// aside (a board is read entry by entry).
const maxBoxFile = board.MaxParamsSize

func readBoxFile(path string, limit int) ([]byte, error) {
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
		return nil, fmt.Errorf("%s: over %d bytes", path, limit)
	}
	return b, nil
}

func loadParamsFile(path string) (*board.Params, error) {
	b, err := readBoxFile(path, maxBoxFile)
	if err != nil {
		return nil, err
	}
	p, err := board.ParseParams(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// writeBoxFile writes data to path through a temporary file and a rename.
func writeBoxFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func needFlags(cmd string, flags map[string]string) error {
	for name, v := range flags {
		if v == "" {
			return fmt.Errorf("%s is required (see 'mixctl vote %s --help')", name, cmd)
		}
	}
	return nil
}

func newVoteBoxKeyCmd() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "box-key --box DIR",
		Short: "Print the ballot box's board-signing public key (creating the key if needed)",
		Long: `Prints the public key the ballot box signs board entries and receipts with: the
BoxKey of the election definition. The key is created (mode 0600) on first use, by
this command or by the vote service.

` + boxDirHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needFlags("box-key", map[string]string{"--box": dir}); err != nil {
				return err
			}
			k, err := box.Key(dir)
			if err != nil {
				return err
			}
			defer k.Wipe()
			fmt.Fprintln(cmd.OutOrStdout(), k.Public())
			return nil
		},
	}
	c.Flags().StringVar(&dir, "box", "", "the box directory (the provider's data_dir/vote)")
	return c
}

func newVoteOpenCmd() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "open PARAMS --box DIR",
		Short: "Install an election's parameters on the ballot box",
		Long: `Installs PARAMS (the election's params.bin, from 'mixctl vote params') in the box
directory. The box then accepts casts for the election during its voting period.
Refused when the parameters name another box key, or when the election is already
installed with different parameters.

` + boxDirHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needFlags("open", map[string]string{"--box": dir}); err != nil {
				return err
			}
			p, err := loadParamsFile(args[0])
			if err != nil {
				return err
			}
			if err := box.Install(dir, p); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "election %q open on the ballot box: %d voters, %d questions, voting from %s to %s\n",
				p.ElectionID, len(p.Voters), len(p.Questions), p.Opens.UTC().Format(time.RFC3339), p.Closes.UTC().Format(time.RFC3339))
			return nil
		},
	}
	c.Flags().StringVar(&dir, "box", "", "the box directory (the provider's data_dir/vote)")
	return c
}

func newVoteCloseCmd() *cobra.Command {
	var dir string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "close ELECTION SIGNATURE... --box DIR [--wait DURATION]",
		Short: "Close an election with the trustees' close signatures",
		Long: `Checks the trustees' close signatures (files from 'mixctl vote close-sign'; at
least the threshold of distinct trustees) against the election's parameters and leaves
the close for the vote service, which appends the close entry to the board at or after
the end of the voting period; from then on the box accepts no cast. With --wait, waits
that long for the close entry to appear on the board.

` + boxDirHelp,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needFlags("close", map[string]string{"--box": dir}); err != nil {
				return err
			}
			p, err := box.Params(dir, args[0])
			if err != nil {
				return err
			}
			var sigs []*board.CloseSignature
			for _, path := range args[1:] {
				b, err := readBoxFile(path, board.MaxCloseSignatureSize)
				if err != nil {
					return err
				}
				s, err := board.ParseCloseSignature(b)
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				sigs = append(sigs, s)
			}
			cl, err := board.NewClose(p, sigs)
			if err != nil {
				return err
			}
			if err := box.RequestClose(dir, cl); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "close of %q with %d trustee signatures handed to the ballot box; it closes at or after %s\n",
				p.ElectionID, len(cl.Signatures), p.Closes.UTC().Format(time.RFC3339))
			if wait <= 0 {
				return nil
			}
			deadline := time.Now().Add(wait)
			for {
				es, err := box.ReadBoard(dir, p.ElectionID)
				if err != nil {
					return err
				}
				if n := len(es); n > 0 && es[n-1].Kind == board.KindClose {
					fmt.Fprintf(out, "closed: the board has %d entries\n", n)
					return nil
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("the close entry is not on the board after %v: is mixd running with [vote] enabled, and is the voting period over?", wait)
				}
				time.Sleep(200 * time.Millisecond)
			}
		},
	}
	c.Flags().StringVar(&dir, "box", "", "the box directory (the provider's data_dir/vote)")
	c.Flags().DurationVar(&wait, "wait", 0, "wait this long for the close entry")
	return c
}

func newVoteBoardCmd() *cobra.Command {
	var dir, out string
	c := &cobra.Command{
		Use:   "board ELECTION --box DIR --out FILE",
		Short: "Copy an election's board out of the ballot box, verified",
		Long: `Reads the board of ELECTION (as far as it is written: an append in progress is
left out), checks every rule of docs/spec/vote.md §11.6 (hash chain, box signatures,
every cast's eligibility, signature and proofs, the close), and writes it to FILE (the
record's board.bin). A board that is not closed yet is written too, and said so.

` + boxDirHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needFlags("board", map[string]string{"--box": dir, "--out": out}); err != nil {
				return err
			}
			p, err := box.Params(dir, args[0])
			if err != nil {
				return err
			}
			es, err := box.ReadBoard(dir, p.ElectionID)
			if err != nil {
				return err
			}
			chk, err := board.NewChecker(p)
			if err != nil {
				return err
			}
			for _, e := range es {
				if err := chk.Add(e); err != nil {
					return err
				}
			}
			if err := writeBoxFile(out, board.MarshalBoard(es)); err != nil {
				return err
			}
			state := "closed"
			if !chk.Closed() {
				state = "not closed yet"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "board of %q verified: %d entries, %s; written to %s\n", p.ElectionID, len(es), state, out)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "box", "", "the box directory (the provider's data_dir/vote)")
	c.Flags().StringVar(&out, "out", "", "the board file to write")
	return c
}

// parseChoices reads "2,0,1": one choice per question.
func parseChoices(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("--choices %q: want one number per question, separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// pendingCast returns the cast in RECEIPT.cast when no receipt for it is in RECEIPT: a cast
// of this election and credential that an earlier run sent, or may have sent, without getting
// its receipt. It returns nil when there is none (no file, or the receipt holds for it: that
// cast is done, and a new run is a re-vote).
func pendingCast(receiptOut string, p *board.Params, cred keys.IdentityPublicKey) ([]byte, error) {
	data, err := readBoxFile(receiptOut+".cast", board.MaxCastSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if rb, err := readBoxFile(receiptOut, board.MaxReceiptSize); err == nil {
		if r, err := board.ParseReceipt(rb); err == nil && r.VerifyCast(p, data) == nil {
			return nil, nil
		}
	}
	c, err := board.ParseCast(data)
	if err != nil {
		return nil, fmt.Errorf("%s.cast: %w (remove it to make a new cast)", receiptOut, err)
	}
	if err := c.Check(p); err != nil {
		return nil, fmt.Errorf("%s.cast is not a valid cast of election %q: %w (remove it to make a new cast)", receiptOut, p.ElectionID, err)
	}
	if c.Credential != cred {
		return nil, fmt.Errorf("%s.cast was made with credential %s, not %s (remove it to make a new cast)", receiptOut, c.Credential, cred)
	}
	return data, nil
}

func newVoteCastCmd() *cobra.Command {
	var params, choices, credential, to, receiptOut string
	var sf sendFlags
	c := &cobra.Command{
		Use:   "cast --params FILE --choices N[,N...] --credential KEY --to DOMAIN --directory URL --authority HEX --user NAME --domain DOMAIN --link-key FILE --data-dir DIR",
		Short: "Vote through the mixnet and keep the ballot box's receipt",
		Long: `Encrypts one choice per question (numbered from 0) under the election key, proves
knowledge of each ballot, signs the cast with your voter credential (the key from
'mixctl vote keygen' whose public key is on the voter list), and sends it through the
mixnet to the ballot box at the provider of --to, as user --user of the provider of
--domain (with its link key). Waits for the box's answer: a signed receipt, checked
and written to --receipt (the cast itself beside it, FILE.cast), or the reason of a
refusal. Casting again replaces your earlier ballot (only the last one counts); but
a run that got no receipt (interrupted, timed out) is completed by the next run with the
same --receipt: it sends the same cast again, and the box answers with the same receipt.
Check the receipt against the published board with 'mixctl vote receipt'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needFlags("cast", sf.required(map[string]string{"--params": params, "--choices": choices,
				"--credential": credential, "--to": to, "--receipt": receiptOut})); err != nil {
				return err
			}
			p, err := loadParamsFile(params)
			if err != nil {
				return err
			}
			cs, err := parseChoices(choices)
			if err != nil {
				return err
			}
			cred, err := keys.LoadIdentityKey(credential)
			if err != nil {
				return err
			}
			if !p.Eligible(cred.Public()) {
				cred.Wipe()
				return fmt.Errorf("credential %s is not on the voter list of %q", cred.Public(), p.ElectionID)
			}
			// A cast kept by a run that did not get its receipt (interrupted, or no answer in
			// time) is sent again as it is: the box answers a cast already on its board with
			// the same receipt, where a new cast would be a second entry, a re-vote.
			data, err := pendingCast(receiptOut, p, cred.Public())
			if err != nil {
				cred.Wipe()
				return err
			}
			if data != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "sending again the cast of an earlier run that got no receipt (%s.cast; its choices, not --choices)\n", receiptOut)
			} else {
				cast, err := board.NewCast(rand.Reader, p, cred, cs)
				if err != nil {
					cred.Wipe()
					return err
				}
				data = cast.Marshal()
				// Kept before sending: a retransmission after a crash must send the same cast.
				if err := writeBoxFile(receiptOut+".cast", data); err != nil {
					cred.Wipe()
					return err
				}
			}
			cred.Wipe()
			st, err := sf.send(cmd, client.Destination{Domain: to, Recipient: p.ElectionID, Service: "vote"}, data)
			if err != nil {
				return err
			}
			if st.State == client.StateFailed {
				return fmt.Errorf("cast refused: %s", refusal(st))
			}
			r, err := board.ParseReceipt(st.Answer)
			if err != nil {
				return fmt.Errorf("the ballot box acknowledged the cast without a valid receipt: %w", err)
			}
			if err := r.VerifyCast(p, data); err != nil {
				return fmt.Errorf("the ballot box's receipt does not hold: %w", err)
			}
			if err := writeBoxFile(receiptOut, r.Marshal()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cast on the board of %q as entry %d; receipt written to %s\n", p.ElectionID, r.Seq, receiptOut)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&params, "params", "", "the election's params.bin")
	f.StringVar(&choices, "choices", "", "your choice for each question, numbered from 0, separated by commas")
	f.StringVar(&credential, "credential", "", "your voter credential (private key file)")
	f.StringVar(&to, "to", "", "mail domain of the provider that runs the ballot box")
	f.StringVar(&receiptOut, "receipt", "", "file for the receipt (the cast is written to FILE.cast)")
	sf.add(c, "answer from the ballot box")
	return c
}

func newVoteReceiptCmd() *cobra.Command {
	var params, boardPath, castPath string
	c := &cobra.Command{
		Use:   "receipt RECEIPT --params FILE --board FILE [--cast FILE]",
		Short: "Check a receipt against the ballot box's key and the published board",
		Long: `Checks that RECEIPT carries the ballot box's signature (the BoxKey of the
parameters), that it commits to the cast in --cast (default RECEIPT.cast, as 'mixctl vote
cast' wrote it), that the published board verifies, and that the board holds the
receipt's entry. Says whether that ballot is the one counted or whether a later cast of
the same credential (a re-vote) replaced it. A signed receipt whose entry is not on the
board is proof that the box dropped the ballot.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needFlags("receipt", map[string]string{"--params": params, "--board": boardPath}); err != nil {
				return err
			}
			if castPath == "" {
				castPath = args[0] + ".cast"
			}
			p, err := loadParamsFile(params)
			if err != nil {
				return err
			}
			rb, err := readBoxFile(args[0], board.MaxReceiptSize)
			if err != nil {
				return err
			}
			r, err := board.ParseReceipt(rb)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			cb, err := readBoxFile(castPath, board.MaxCastSize)
			if err != nil {
				return err
			}
			if err := r.VerifyCast(p, cb); err != nil {
				return err
			}
			f, err := os.Open(boardPath)
			if err != nil {
				return err
			}
			defer f.Close()
			chk, err := board.NewChecker(p)
			if err != nil {
				return err
			}
			var es []*board.Entry
			for {
				e, _, err := board.ReadEntry(f)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return fmt.Errorf("%s: board entry %d: %w", boardPath, len(es), err)
				}
				if err := chk.Add(e); err != nil {
					return fmt.Errorf("%s: %w", boardPath, err)
				}
				es = append(es, e)
			}
			later, err := r.OnBoard(es)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			state := "closed"
			if err := chk.Finish(); err != nil {
				state = "not closed yet"
			}
			if later >= 0 {
				fmt.Fprintf(out, "receipt holds: your cast is entry %d of the board (%s), replaced by your later cast at entry %d\n", r.Seq, state, later)
			} else {
				fmt.Fprintf(out, "receipt holds: your cast is entry %d of the board (%s), and it is the one counted\n", r.Seq, state)
			}
			return nil
		},
	}
	c.Flags().StringVar(&params, "params", "", "the election's params.bin")
	c.Flags().StringVar(&boardPath, "board", "", "the published board file")
	c.Flags().StringVar(&castPath, "cast", "", "your cast (default RECEIPT.cast)")
	return c
}
