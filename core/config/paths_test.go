package config

import (
	"path/filepath"
	"testing"
)

func TestResolveStatePaths(t *testing.T) {
	lab := t.TempDir()
	for _, tc := range []struct {
		name, cfg, path string
		state, cache    string
	}{
		{"embedded default: the working directory", "", ".stirgate/outcomes.db", ".stirgate/outcomes.db", "x5u"},
		{"lab config: beside it", filepath.Join(lab, "lab.toml"), ".stirgate/outcomes.db",
			filepath.Join(lab, ".stirgate/outcomes.db"), filepath.Join(lab, "x5u")},
		{"system config: the state directory", "/etc/stirgate/stirgate.toml", ".stirgate/outcomes.db",
			"/var/lib/stirgate/outcomes.db", "/var/cache/stirgate/x5u"},
		{"system config, the lab dir itself", "/etc/stirgate/stirgate.toml", ".stirgate", "/var/lib/stirgate", "/var/cache/stirgate/x5u"},
		{"system config, another relative name", "/usr/local/etc/stirgate/stirgate.toml", "lab/../db/outcomes.db",
			"/var/lib/stirgate/db/outcomes.db", "/var/cache/stirgate/x5u"},
		{"system config, absolute", "/etc/stirgate/stirgate.toml", "/srv/outcomes.db", "/srv/outcomes.db", "/var/cache/stirgate/x5u"},
		{"a directory merely named like etc is a lab", "/home/op/etcetera/stirgate.toml", "outcomes.db",
			"/home/op/etcetera/outcomes.db", "/home/op/etcetera/x5u"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{Path: tc.cfg}
			if got := c.ResolveState(tc.path); got != tc.state {
				t.Errorf("ResolveState(%q) = %q, want %q", tc.path, got, tc.state)
			}
			if got := c.ResolveCache("x5u"); got != tc.cache {
				t.Errorf("ResolveCache(x5u) = %q, want %q", got, tc.cache)
			}
			if got := c.ResolveState(""); got != "" {
				t.Errorf(`ResolveState("") = %q`, got)
			}
		})
	}
}

// Key and certificate files stay beside a system config: only what the
// service writes moves out of /etc.
func TestSystemConfigKeepsFilesBesideIt(t *testing.T) {
	c := &Config{Path: "/etc/stirgate/stirgate.toml"}
	if got := c.Resolve("sp.key"); got != "/etc/stirgate/sp.key" {
		t.Fatalf("Resolve(sp.key) = %q", got)
	}
}

// A lab named in a system config goes to the state directory; generating
// one there is exercised by the package test (packaging/), which runs the
// packaged config in a throwaway root.
func TestSystemConfigLabDir(t *testing.T) {
	c := &Config{Path: "/etc/stirgate/stirgate.toml", Lab: Lab{Dir: "lab"}}
	if got := c.ResolveState(c.Lab.Dir); got != "/var/lib/stirgate/lab" {
		t.Fatalf("lab dir %q", got)
	}
}
