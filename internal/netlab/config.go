package netlab

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A setting is one key an operator changes in an example configuration of configs/: Key is
// "key" for a top-level key or "section.key" (the last [section] or [[section]] header above
// it); Value is a TOML value as written after the "=".
type setting struct {
	Key, Value string
	// Add settings are added when the example lacks them (at the top of their section, or in a
	// new section at the end); any other missing key is an error, since the example changed
	// under us.
	Add bool
	// Drop removes every table named Key ([Key] or [[Key]], up to the next header) instead:
	// an example section the operator deletes when not using it.
	Drop bool
}

var (
	tomlHeader = regexp.MustCompile(`^\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$`)
	tomlKey    = regexp.MustCompile(`^\s*([A-Za-z0-9_-]+)\s*=`)
)

// editTOML sets keys in a TOML document given as text, keeping every comment and line it does
// not change, and appends extra at the end. Each key must occur exactly once (or not at all, when
// Optional): the examples in configs/ have single-line values, and a key that moved or doubled
// means the example changed and the docs/operators pages with it.
func editTOML(src string, set []setting, extra string) (string, error) {
	lines := strings.Split(src, "\n")
	found := map[string]int{}
	want := map[string]string{}
	drop := map[string]bool{}
	for _, s := range set {
		if s.Drop {
			drop[s.Key] = true
		} else {
			want[s.Key] = s.Value
		}
	}
	var kept []string
	section := ""
	for _, line := range lines {
		if m := tomlHeader.FindStringSubmatch(line); m != nil {
			section = m[1]
		}
		if !drop[section] {
			kept = append(kept, line)
		}
	}
	lines = kept
	section = ""
	for i, line := range lines {
		if m := tomlHeader.FindStringSubmatch(line); m != nil {
			section = m[1]
			continue
		}
		m := tomlKey.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		key := m[1]
		if section != "" {
			key = section + "." + key
		}
		v, ok := want[key]
		if !ok {
			continue
		}
		found[key]++
		lines[i] = m[1] + " = " + v
	}
	for _, s := range set {
		switch n := found[s.Key]; {
		case s.Drop:
		case n == 0 && s.Add:
			lines = addKey(lines, s.Key, s.Value)
		case n == 0:
			return "", fmt.Errorf("netlab: key %s not in the example configuration", s.Key)
		case n > 1:
			return "", fmt.Errorf("netlab: key %s occurs %d times in the example configuration", s.Key, n)
		}
	}
	out := strings.Join(lines, "\n")
	if extra != "" {
		out = strings.TrimRight(out, "\n") + "\n\n" + extra
	}
	return out, nil
}

// addKey adds "key = value" for key ("section.key") right under its section's header, or in a
// new section at the end when there is none.
func addKey(lines []string, key, value string) []string {
	section, name, ok := strings.Cut(key, ".")
	if !ok {
		return append([]string{name + " = " + value}, lines...) // unreachable for our keys: top-level keys have no dot
	}
	for i, line := range lines {
		if m := tomlHeader.FindStringSubmatch(line); m != nil && m[1] == section {
			return slices.Insert(lines, i+1, name+" = "+value)
		}
	}
	return append(lines, "", "["+section+"]", name+" = "+value, "")
}

// writeConfig writes the example configs/example of the repository at repo, with set and extra,
// into file.
func writeConfig(repo, example, file string, set []setting, extra string) error {
	src, err := os.ReadFile(filepath.Join(repo, "configs", example))
	if err != nil {
		return fmt.Errorf("netlab: example configuration: %w", err)
	}
	out, err := editTOML(string(src), set, extra)
	if err != nil {
		return fmt.Errorf("%w (configs/%s)", err, example)
	}
	return os.WriteFile(file, []byte(out), 0o644)
}

// q writes a TOML basic string (Go's quoting of the printable ASCII we write is TOML's too).
func q(s string) string { return strconv.Quote(s) }

// qs writes a TOML array of strings.
func qs(ss ...string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = q(s)
	}
	return "[" + strings.Join(out, ", ") + "]"
}
