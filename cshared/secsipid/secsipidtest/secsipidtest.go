// Package secsipidtest gives the drop-in's tests and benchmarks what they
// share: the built libsecsipid.so.1 and a lab PKI with an HTTPS x5u server
// on loopback. The library itself cannot be loaded into a Go test process
// (a second Go runtime), so tests drive it through C programs and Kamailio.
package secsipidtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stirgate/stirgate/core/certs"
)

// EnvLibDir names a directory holding a prebuilt libsecsipid.so.1 (set by
// `make secsipid-test`); without it, LibDir builds one.
const EnvLibDir = "SECSIPID_LIB_DIR"

// SOName is the file name and SONAME of the drop-in.
const SOName = "libsecsipid.so.1"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// LibDir returns a directory holding the drop-in. Without EnvLibDir it
// builds one into a directory of the temporary directory named after a
// hash of the sources, so that test packages running in parallel share one
// build; the directory appears atomically, complete or not at all.
func LibDir() (string, error) {
	if d := os.Getenv(EnvLibDir); d != "" {
		if _, err := os.Stat(filepath.Join(d, SOName)); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvLibDir, d, err)
		}
		return d, nil
	}
	buildOnce.Do(func() { buildDir, buildErr = build() })
	return buildDir, buildErr
}

func build() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	key, err := sourceHash(root)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(os.TempDir(), "stirgate-secsipid-"+key)
	if _, err := os.Stat(filepath.Join(dir, SOName)); err == nil {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(os.TempDir(), "stirgate-secsipid-build-")
	if err != nil {
		return "", err
	}
	// The version script keeps the internal Go exports (sgsip_*) out of
	// the symbol table, so that only the fork-guarded C functions of
	// shim.c can be called; the same flags as secsipid.mk.
	cmd := exec.Command("go", "build", "-buildmode=c-shared",
		"-ldflags=-extldflags=-Wl,-soname,"+SOName+",--version-script,"+filepath.Join(root, "cshared/secsipid/libsecsipid.map"),
		"-o", filepath.Join(tmp, SOName), "./cshared/secsipid")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("building %s: %v\n%s", SOName, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another package built it meanwhile: use theirs.
		os.RemoveAll(tmp)
		if _, serr := os.Stat(filepath.Join(dir, SOName)); serr != nil {
			return "", err
		}
	}
	return dir, nil
}

// sourceHash covers everything the library is built from.
func sourceHash(root string) (string, error) {
	h := sha256.New()
	for _, top := range []string{"cshared/secsipid", "core", "go.mod", "go.sum"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".h") || strings.HasSuffix(p, ".c") || strings.HasSuffix(p, ".map") || strings.HasPrefix(d.Name(), "go.")) {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			fmt.Fprintf(h, "%s %d\n", rel, len(b))
			h.Write(b)
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// RepoRoot is the directory of go.mod above the working directory.
func RepoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", errors.New("go.mod not found above the working directory")
		}
		d = p
	}
}

// Lab is a lab PKI written to Dir (certs.Lab's file names) with its
// chain served over HTTPS on loopback, and a stirgate TOML (Config) that
// admits that server for x5u fetches.
type Lab struct {
	*certs.Lab
	Dir     string
	X5U     string // https URL of the chain (sp-chain.pem)
	Missing string // URL on the same server that answers 404
	Host    string // host:port of the server
	TLSCert string // the server's self-signed certificate (PEM file)
	Config  string // stirgate TOML: [x5u] lab_hosts and ca_file

	srv     *httptest.Server
	fetches atomic.Int64
}

// Fetches is how many times the chain was served.
func (l *Lab) Fetches() int64 { return l.fetches.Load() }

// NewLab writes a lab PKI valid now into dir and starts its x5u server,
// whose errors go to the standard logger.
func NewLab(dir string) (*Lab, error) { return NewLabLog(dir, nil) }

// NewLabLog is NewLab with the x5u server's errors (a client hanging up
// mid-handshake, say) going to errorLog; tests pass one that logs to the
// test (internal/testlog), so passing runs print nothing of theirs.
func NewLabLog(dir string, errorLog *log.Logger) (*Lab, error) {
	l, err := certs.NewLab(certs.LabOptions{Now: time.Now()})
	if err != nil {
		return nil, err
	}
	if err := l.WriteDir(dir); err != nil {
		return nil, err
	}
	chain := l.ChainPEM()
	lab := &Lab{Lab: l, Dir: dir}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/sp.pem" {
			lab.fetches.Add(1)
			w.Header().Set("Content-Type", "application/x-pem-file")
			w.Header().Set("Cache-Control", "max-age=3600")
			w.Write(chain)
			return
		}
		http.NotFound(w, r)
	}))
	srv.Config.ErrorLog = errorLog
	srv.StartTLS()
	lab.srv, lab.Host = srv, srv.Listener.Addr().String()
	lab.X5U = "https://" + lab.Host + "/sp.pem"
	lab.Missing = "https://" + lab.Host + "/missing.pem"
	lab.TLSCert = filepath.Join(dir, "x5u-tls.pem")
	if err := os.WriteFile(lab.TLSCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		srv.Close()
		return nil, err
	}
	lab.Config = filepath.Join(dir, "stirgate.toml")
	toml := fmt.Sprintf("# lab: admit the loopback x5u server\n[x5u]\nlab_hosts = [%q]\nca_file = %q\ntimeout = \"15s\"\n", lab.Host, lab.TLSCert)
	if err := os.WriteFile(lab.Config, []byte(toml), 0o644); err != nil {
		srv.Close()
		return nil, err
	}
	return lab, nil
}

// Path returns the path of a lab file by its certs.Lab name (sp.key...).
func (l *Lab) Path(name string) string { return filepath.Join(l.Dir, name) }

// Close stops the x5u server.
func (l *Lab) Close() { l.srv.Close() }
