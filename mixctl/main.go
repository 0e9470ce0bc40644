// Command mixctl is the PANORAMIX administration tool (DESIGN.md section 2): keys, node
// approval and network status, talking to the daemons' APIs.
//
// Each group of subcommands lives in its own file and registers itself with addCommand from an
// init function, so new groups (testnet, user, vote, survey) are added without touching this
// file.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/panoramix-mixnet/panoramix/pkg/version"
)

// commands are the top-level subcommand constructors, registered by addCommand.
var commands []func() *cobra.Command

// addCommand registers a top-level subcommand; call it from an init function.
func addCommand(f func() *cobra.Command) { commands = append(commands, f) }

// newRoot builds the command tree. A fresh tree per call keeps flag state out of globals, so
// tests can run commands one after another.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "mixctl",
		Short: "Administer a PANORAMIX mixnet",
		Long: `mixctl administers a PANORAMIX mixnet: directory authority keys, node approval
and network status. Run 'mixctl COMMAND --help' for what each command does.`,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	for _, f := range commands {
		root.AddCommand(f())
	}
	return root
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code: 0 on success, 1 on failure.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintf(stderr, "mixctl: %v\n", err)
		return 1
	}
	return 0
}
