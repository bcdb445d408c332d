// Package secsipidtest gives the drop-in's tests and benchmarks what they
// share: the built libsecsipid.so.1 and a lab PKI with an HTTPS x5u server
// on loopback. The library itself cannot be loaded into a Go test process
// (a second Go runtime), so tests drive it through C programs and Kamailio.
package secsipidtest

import (
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
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

// LibDir returns a directory holding the drop-in, building it on first
// use into a fresh temporary directory.
func LibDir() (string, error) {
	if d := os.Getenv(EnvLibDir); d != "" {
		if _, err := os.Stat(filepath.Join(d, SOName)); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvLibDir, d, err)
		}
		return d, nil
	}
	buildOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "stirgate-secsipid-")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-buildmode=c-shared",
			"-ldflags=-extldflags=-Wl,-soname,"+SOName,
			"-o", filepath.Join(dir, SOName), "./cshared/secsipid")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building %s: %v\n%s", SOName, err, out)
			return
		}
		buildDir = dir
	})
	return buildDir, buildErr
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

	srv *httptest.Server
}

// NewLab writes a lab PKI valid now into dir and starts its x5u server.
func NewLab(dir string) (*Lab, error) {
	l, err := certs.NewLab(certs.LabOptions{Now: time.Now()})
	if err != nil {
		return nil, err
	}
	if err := l.WriteDir(dir); err != nil {
		return nil, err
	}
	chain := l.ChainPEM()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/sp.pem" {
			w.Header().Set("Content-Type", "application/x-pem-file")
			w.Header().Set("Cache-Control", "max-age=3600")
			w.Write(chain)
			return
		}
		http.NotFound(w, r)
	}))
	srv.StartTLS()
	lab := &Lab{Lab: l, Dir: dir, srv: srv, Host: srv.Listener.Addr().String()}
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
