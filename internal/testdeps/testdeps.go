// Package testdeps finds the outside programs the ami tests run (Debian's
// PostgreSQL and Chromium) and installs a missing one with apt-get when
// the tests run as root, as `make test` does. It never skips: a program
// that is still missing is an error the test reports as a failure.
package testdeps

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

var aptMu sync.Mutex // one apt-get at a time within a test binary

// Find returns the first match of the globs (absolute patterns or bare
// program names looked up in PATH); when none matches it installs the
// Debian package pkg and looks again.
func Find(pkg string, globs ...string) (string, error) {
	if p := find(globs); p != "" {
		return p, nil
	}
	if err := install(pkg); err != nil {
		return "", err
	}
	if p := find(globs); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("%v not found after installing %s", globs, pkg)
}

func find(globs []string) string {
	for _, g := range globs {
		if !filepath.IsAbs(g) {
			if p, err := exec.LookPath(g); err == nil {
				return p
			}
			continue
		}
		m, _ := filepath.Glob(g)
		sort.Strings(m)
		if len(m) > 0 {
			return m[len(m)-1] // the newest version directory sorts last
		}
	}
	return ""
}

func install(pkg string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s is not installed and the tests are not root: apt-get install -y %s", pkg, pkg)
	}
	aptMu.Lock()
	defer aptMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", pkg)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install %s: %w\n%s", pkg, err, out)
	}
	return nil
}
