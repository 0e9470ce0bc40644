// Command mailproxy will run on a user's machine (DESIGN.md sections 2 and 3): a localhost SMTP
// server for the user's mail program that turns each mail into Sphinx packets, sends them with
// cover traffic over an encrypted link to the user's provider, and resends them until they are
// acknowledged.
//
// That capability is not built yet (issue 6 builds it). Until then this program only answers
// --version and --help, and refuses everything else.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/panoramix-mixnet/panoramix/pkg/version"
)

const name = "mailproxy"

const usage = `Usage: mailproxy --version | --help

mailproxy will be the PANORAMIX client-side SMTP proxy. It is not built yet:
issue 6 ("mailproxy and the client engine: Thunderbird to IMAP through the
mixnet") builds it. Until then only these options work:

  --version   print the version and exit
  --help, -h  print this help and exit
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args and returns the process exit code: 0 for --version and --help, 2 for anything
// else, because nothing else is implemented.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // help goes to stdout below; errors get a one-line hint instead
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", name)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "%s: unexpected argument %q: only --version and --help are implemented (issue 6 builds the proxy)\n", name, fs.Arg(0))
		return 2
	case *showVersion:
		fmt.Fprintf(stdout, "%s %s\n", name, version.Version)
		return 0
	default:
		fmt.Fprintf(stderr, "%s: the proxy is not built yet (issue 6 builds it); only --version and --help work\n", name)
		return 2
	}
}
