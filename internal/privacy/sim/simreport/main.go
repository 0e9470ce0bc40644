// Command simreport runs the simulator's sweeps (sim.WriteReport), writes their SVG charts into
// a directory and the markdown that shows them into a file: docs/privacy/SIMULATION.md is made
// with
//
//	go run ./internal/privacy/sim/simreport -dir docs/privacy -out docs/privacy/SIMULATION.md
//
// -quick makes a short version in about a minute.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/panoramix-mixnet/panoramix/internal/privacy/sim"
)

func main() {
	dir := flag.String("dir", "docs/privacy", "directory for the SVG charts")
	out := flag.String("out", "docs/privacy/SIMULATION.md", "markdown file to write")
	quick := flag.Bool("quick", false, "short runs, fewer points")
	seed := flag.Uint64("seed", 1, "random seed of every run")
	workers := flag.Int("workers", 0, "runs in parallel (0: GOMAXPROCS)")
	flag.Parse()
	links, err := filepath.Rel(filepath.Dir(*out), *dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "simreport:", err)
		os.Exit(2)
	}
	if links == "." {
		links = ""
	} else {
		links = filepath.ToSlash(links) + "/"
	}
	md, err := sim.WriteReport(sim.ReportOptions{Dir: *dir, Links: links, Quick: *quick, Seed: *seed, Workers: *workers, Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "simreport:", err)
		os.Exit(1)
	}
	doc := "# Privacy: the simulator's predictions\n\nWritten by `go run ./internal/privacy/sim/simreport`; do not edit by hand.\n\n" + md
	if err := os.WriteFile(*out, []byte(doc), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "simreport:", err)
		os.Exit(1)
	}
}
