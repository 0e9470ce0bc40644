package main

import "github.com/spf13/cobra"

func init() { addCommand(newVoteCmd) }

// voteCommands are the constructors of the `mixctl vote` subcommands. The election
// official's, trustees' and verifier's commands (vote_election.go) and the ballot box and
// voter's commands (vote_box.go) register themselves with addVoteCommand from init functions.
var voteCommands []func() *cobra.Command

// addVoteCommand registers a `mixctl vote` subcommand; call it from an init function.
func addVoteCommand(f func() *cobra.Command) { voteCommands = append(voteCommands, f) }

func newVoteCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "vote",
		Short: "Verifiable elections carried over the mixnet",
		Long: `Commands for elections whose ballots travel through the mixnet to a ballot box
on a provider (docs/spec/vote.md). Run 'mixctl vote COMMAND --help' for each step:
create the election, generate the trustees' threshold key, open the ballot box,
cast ballots, check receipts, close, mix, decrypt, tally and verify the record.`,
	}
	for _, f := range voteCommands {
		c.AddCommand(f())
	}
	return c
}
