package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/boot"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/plugin"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
)

// Plugin is one [[plugin]] section: a provider service run as a child process
// (docs/spec/plugin.md section 6).
type Plugin struct {
	// Name is the service name, which the plugin's HELLO must declare.
	Name string `mapstructure:"name"`
	// Command is the argv mixd starts (no shell); a relative program path with a "/" is
	// relative to the configuration file.
	Command []string `mapstructure:"command"`
	// Socket, instead of command, is the Unix socket path of a plugin that runs on its own
	// (another user, a container): mixd connects to it and reconnects with backoff; relative
	// to the configuration file.
	Socket string `mapstructure:"socket"`
	// Env are KEY=VALUE entries of the plugin's environment (besides PATH and
	// PANORAMIX_PLUGIN_DIR).
	Env []string `mapstructure:"env"`
	// MaxInFlight bounds the requests handed to the plugin and not answered (default 64).
	MaxInFlight int `mapstructure:"max_in_flight"`
	// Timeout bounds the wait for one answer (default 10 s), and for the HELLO if longer.
	Timeout time.Duration `mapstructure:"timeout"`
}

// maxPluginTimeout bounds timeout: a sender's ACK deadline is about half a minute beyond its
// round trip (client.md section 4), so a longer wait would only hold in-flight slots.
const maxPluginTimeout = 5 * time.Minute

// maxSocketPath is what a Unix socket address holds on Linux (sun_path less its NUL).
const maxSocketPath = 107

// reservedServices are the names of the built-in services, which no plugin may take.
var reservedServices = []string{service.LoopName, "queue", "drop", "mailbox", "vote", "survey"}

// PluginDir is the working directory of plugin name.
func (c *Config) PluginDir(name string) string {
	return filepath.Join(c.DataDir, "plugins", name)
}

// resolvePlugins applies the defaults and makes relative program paths absolute.
func (c *Config) resolvePlugins(path string) error {
	for i := range c.Plugins {
		p := &c.Plugins[i]
		if p.MaxInFlight == 0 {
			p.MaxInFlight = plugin.DefaultMaxInFlight
		}
		if p.Timeout == 0 {
			p.Timeout = plugin.DefaultTimeout
		}
		if err := boot.ResolvePaths(path, &p.Socket); err != nil {
			return err
		}
		if len(p.Command) > 0 && strings.Contains(p.Command[0], "/") {
			if err := boot.ResolvePaths(path, &p.Command[0]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Config) validatePlugins(provider bool) error {
	seen := map[string]bool{}
	for i, p := range c.Plugins {
		key := fmt.Sprintf("[[plugin]] %d", i+1)
		if !provider {
			return fmt.Errorf("%s: plugins run on providers, and role is %q", key, c.Role)
		}
		if !service.NamePattern.MatchString(p.Name) {
			return fmt.Errorf("%s: name = %q: want %s", key, p.Name, service.NamePattern)
		}
		for _, r := range reservedServices {
			if p.Name == r {
				return fmt.Errorf("%s: name = %q is a built-in service", key, p.Name)
			}
		}
		if seen[p.Name] {
			return fmt.Errorf("%s: name = %q is taken by another [[plugin]]", key, p.Name)
		}
		seen[p.Name] = true
		if (len(p.Command) == 0 || p.Command[0] == "") == (p.Socket == "") {
			return fmt.Errorf("%s (%s): want either command (the program and its arguments) or socket (a Unix socket path), not both or neither", key, p.Name)
		}
		if len(p.Socket) > maxSocketPath {
			return fmt.Errorf("%s (%s): socket path of %d bytes, at most %d", key, p.Name, len(p.Socket), maxSocketPath)
		}
		for _, e := range p.Env {
			if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
				return fmt.Errorf("%s (%s): env entry %q: want KEY=VALUE", key, p.Name, e)
			}
		}
		if p.MaxInFlight < 1 || p.MaxInFlight > plugin.MaxMaxInFlight {
			return fmt.Errorf("%s (%s): max_in_flight = %d: want 1 to %d", key, p.Name, p.MaxInFlight, plugin.MaxMaxInFlight)
		}
		if p.Timeout <= 0 || p.Timeout > maxPluginTimeout {
			return fmt.Errorf("%s (%s): timeout = %v: want more than 0 and at most %v", key, p.Name, p.Timeout, maxPluginTimeout)
		}
	}
	return nil
}
