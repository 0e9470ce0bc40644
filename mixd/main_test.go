package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/version"
)

func TestRun(t *testing.T) {
	help := []string{"not built yet", "issue 4", "--version"}
	tests := []struct {
		args       []string
		code       int
		stdoutHas  []string // empty: stdout must be empty
		stderrNone bool
	}{
		{args: []string{"--version"}, code: 0, stdoutHas: []string{"mixd " + version.Version + "\n"}, stderrNone: true},
		{args: []string{"--help"}, code: 0, stdoutHas: help, stderrNone: true},
		{args: []string{"-h"}, code: 0, stdoutHas: help, stderrNone: true},
		{args: nil, code: 2},
		{args: []string{"--listen", "127.0.0.1:0"}, code: 2},
		{args: []string{"serve"}, code: 2},
		{args: []string{"--version", "extra"}, code: 2},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(tt.args, &stdout, &stderr)
		if code != tt.code {
			t.Errorf("run(%q) = %d, want %d (stderr %q)", tt.args, code, tt.code, stderr.String())
		}
		if len(tt.stdoutHas) == 0 && stdout.Len() != 0 {
			t.Errorf("run(%q) wrote %q to stdout, want nothing", tt.args, stdout.String())
		}
		for _, s := range tt.stdoutHas {
			if !strings.Contains(stdout.String(), s) {
				t.Errorf("run(%q) stdout %q does not contain %q", tt.args, stdout.String(), s)
			}
		}
		if tt.stderrNone && stderr.Len() != 0 {
			t.Errorf("run(%q) wrote %q to stderr, want nothing", tt.args, stderr.String())
		}
		if tt.code != 0 && stderr.Len() == 0 {
			t.Errorf("run(%q) failed with code %d but explained nothing on stderr", tt.args, tt.code)
		}
	}
}
