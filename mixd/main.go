// Command mixd will be the PANORAMIX mix node and provider daemon (DESIGN.md section 2): in role
// "mix" it unwraps, delays and forwards Sphinx packets in one layer of the mixnet; in role
// "provider" it is the entry and exit point that holds user accounts, queues and services.
//
// That capability is not built yet (issue 4 builds it). Until then this program only answers
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

const name = "mixd"

const usage = `Usage: mixd --version | --help

mixd will be the PANORAMIX mix node and provider daemon. It is not built yet:
issue 4 ("mixd: links, mix nodes, providers, services and the local testnet
harness") builds it. Until then only these options work:

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
		fmt.Fprintf(stderr, "%s: unexpected argument %q: only --version and --help are implemented (issue 4 builds the daemon)\n", name, fs.Arg(0))
		return 2
	case *showVersion:
		fmt.Fprintf(stdout, "%s %s\n", name, version.Version)
		return 0
	default:
		fmt.Fprintf(stderr, "%s: the daemon is not built yet (issue 4 builds it); only --version and --help work\n", name)
		return 2
	}
}
