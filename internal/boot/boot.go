// Package boot holds what the PANORAMIX daemons (directory, mixd, mailproxy, postfix-filter)
// share in how they start: the command line (--config, --version, --help), strict TOML
// configuration loading with environment overrides, and the checks each applies to its
// settings. It keeps the four programs' behaviour identical where it should be.
package boot

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/panoramix-mixnet/panoramix/pkg/version"
)

// CLI is a daemon's command line: a flag set with --config and --version, to which the daemon
// adds its own flags before calling Parse.
type CLI struct {
	// Name is the program's name, used in messages.
	Name string
	// Usage is printed to stdout for --help.
	Usage string
	// ConfigHint follows "--config FILE is required" (e.g. " (see configs/mailproxy.toml)").
	ConfigHint string
	// Flags is the flag set; add the daemon's own flags to it.
	Flags *flag.FlagSet

	config      *string
	showVersion *bool
}

// NewCLI returns the command line of program name (cmd, if not empty, names a subcommand in
// messages).
func NewCLI(name, cmd, usage string) *CLI {
	full := name
	if cmd != "" {
		full += " " + cmd
	}
	fs := flag.NewFlagSet(full, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // --help prints Usage to stdout; errors get a one-line hint
	c := &CLI{Name: name, Usage: usage, Flags: fs}
	c.showVersion = fs.Bool("version", false, "print the version")
	c.config = fs.String("config", "", "configuration file")
	return c
}

// Parse parses args. It returns ok with the configuration path when the daemon should go on;
// otherwise it has printed what the user needs (usage, version or an error) and the daemon
// exits with code: 0 after --help or --version, 2 for a usage error.
func (c *CLI) Parse(args []string, stdout, stderr io.Writer) (configPath string, code int, ok bool) {
	if err := c.Flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, c.Usage)
			return "", 0, false
		}
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", c.Name, err, c.Name)
		return "", 2, false
	}
	switch {
	case c.Flags.NArg() > 0:
		fmt.Fprintf(stderr, "%s: unexpected argument %q; run '%s --help' for usage\n", c.Name, c.Flags.Arg(0), c.Name)
		return "", 2, false
	case *c.showVersion:
		fmt.Fprintf(stdout, "%s %s\n", c.Name, version.Version)
		return "", 0, false
	case *c.config == "":
		fmt.Fprintf(stderr, "%s: --config FILE is required%s; run '%s --help' for usage\n", c.Name, c.ConfigHint, c.Name)
		return "", 2, false
	}
	return *c.config, 0, true
}

// LoadTOML reads the TOML file at path into out, a pointer to a struct with mapstructure tags.
// defaults gives every key's default ("section.key" to value); an environment variable
// envPrefix_SECTION_KEY overrides the file. A key the struct does not have is refused, so a
// typo never passes silently.
func LoadTOML(path, envPrefix string, defaults map[string]any, out any) error {
	v := viper.New()
	v.SetConfigFile(path)
	v.SetConfigType("toml")
	for k, val := range defaults {
		v.SetDefault(k, val)
	}
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if err := v.ReadInConfig(); err != nil {
		return err
	}
	return v.UnmarshalExact(out, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.ZeroFields = true
	})
}

// ResolvePaths makes each non-empty relative path absolute, relative to the directory of the
// configuration file at configPath, so that a daemon's files do not depend on its working
// directory.
func ResolvePaths(configPath string, paths ...*string) error {
	dir, err := filepath.Abs(filepath.Dir(configPath))
	if err != nil {
		return err
	}
	for _, p := range paths {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return nil
}

// CheckLoopback accepts host:port where host is a loopback IP address or "localhost"; why says,
// in the error, why the address must be local (e.g. "the admin API has no authentication").
func CheckLoopback(addr, why string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: must be a loopback address (127.0.0.1, ::1 or localhost): %s", addr, why)
	}
	return nil
}

// ParseLogLevel parses a log_level setting: debug, info, warn or error.
func ParseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log_level = %q: want debug, info, warn or error", s)
	}
	return l, nil
}
