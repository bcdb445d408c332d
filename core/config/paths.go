package config

import (
	"path/filepath"
	"strings"
)

// Where a system installation keeps what it writes. The Debian units give
// the service exactly these (StateDirectory=stirgate, CacheDirectory=stirgate).
const (
	SystemStateDir = "/var/lib/stirgate"
	SystemCacheDir = "/var/cache/stirgate"
)

// labStateDir is the state directory of a lab: the sample's relative
// defaults (".stirgate/outcomes.db") name it.
const labStateDir = ".stirgate"

// System reports whether the config belongs to a system installation: a
// file in an etc directory (/etc/stirgate, /usr/local/etc/stirgate). Such
// a directory is read-only to the service and no place for a database, so
// relative state and cache paths leave it (ResolveState, ResolveCache).
// Any other config file is a lab: its state lives beside it, as before.
func (c *Config) System() bool {
	if c.Path == "" {
		return false
	}
	dir, err := filepath.Abs(filepath.Dir(c.Path))
	if err != nil {
		return false
	}
	for _, part := range strings.Split(dir, string(filepath.Separator)) {
		if part == "etc" {
			return true
		}
	}
	return false
}

// ResolveState resolves a path the service writes: the outcome store, its
// spill file, the lab directory. Beside a lab config it is Resolve. For a
// system config a relative path goes under SystemStateDir, and a leading
// ".stirgate" (the lab's state directory, in every default) is that
// directory itself: ".stirgate/outcomes.db" is /var/lib/stirgate/outcomes.db.
func (c *Config) ResolveState(p string) string {
	if p == "" || filepath.IsAbs(p) || !c.System() {
		return c.Resolve(p)
	}
	p = filepath.Clean(p)
	if p == labStateDir {
		return SystemStateDir
	}
	p = strings.TrimPrefix(p, labStateDir+string(filepath.Separator))
	return filepath.Join(SystemStateDir, p)
}

// ResolveCache resolves [x5u] cache_dir: under SystemCacheDir for a system
// config, else as Resolve.
func (c *Config) ResolveCache(p string) string {
	if p == "" || filepath.IsAbs(p) || !c.System() {
		return c.Resolve(p)
	}
	return filepath.Join(SystemCacheDir, filepath.Clean(p))
}
