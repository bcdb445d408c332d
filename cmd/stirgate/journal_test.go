package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// stirgateBin is $STIRGATE_BIN (set by make) or a fresh build of this
// command.
func stirgateBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("STIRGATE_BIN"); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "stirgate")
	if b, err := exec.Command("go", "build", "-o", out, ".").CombinedOutput(); err != nil {
		t.Fatalf("building stirgate: %v\n%s", err, b)
	}
	return out
}

// serveProc is one `stirgate serve` child.
type serveProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
	client *http.Client
	base   string
}

func startServe(t *testing.T, bin, dir, cfgPath, addr string) *serveProc {
	t.Helper()
	logPath := filepath.Join(dir, fmt.Sprintf("serve-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: exec.Command(bin, "serve", "--config", cfgPath), exited: make(chan struct{}), log: logPath, base: "https://" + addr}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); logf.Close(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("serve log:\n%s", b)
		}
	})
	deadline := time.Now().Add(time.Minute)
	for p.client == nil {
		select {
		case <-p.exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("serve exited at start:\n%s", b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not come up")
		}
		pemBytes, err := os.ReadFile(filepath.Join(dir, "lab", "tls.pem"))
		if err != nil {
			continue
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pemBytes)
		c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		if r, err := c.Get(p.base + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				p.client = c
			}
		}
	}
	return p
}

func (p *serveProc) sign(t *testing.T, i int) {
	t.Helper()
	body := fmt.Sprintf(`{"signingRequest":{"dest":{"tn":["12155550131"]},"orig":{"tn":"1215555%04d"}}}`, i)
	r, err := p.client.Post(p.base+"/stir/v1/signing", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 {
		t.Fatalf("signing %d: %d %s", i, r.StatusCode, b)
	}
}

// TestSIGKILLLosesNoOutcome: `stirgate serve` answers N signings while its
// SQLite store is locked by this test (every write waits), is killed with
// SIGKILL, and is started again once the lock is gone: each of the N
// answered signings is then in the store exactly once, read back from the
// journal. The same run with the journal off loses them, which shows the
// harness sees a loss.
func TestSIGKILLLosesNoOutcome(t *testing.T) {
	bin := stirgateBin(t)
	const n = 50
	for _, tc := range []struct {
		name    string
		journal string
	}{{"journal", ""}, {"no-journal", `journal_dir = "off"`}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			addr := freeAddr(t, "tcp")
			cfgPath := filepath.Join(dir, "stirgate.toml")
			cfg := fmt.Sprintf(`
[lab]
dir = "lab"
listen = %q

[policy]
default = "B"

[store]
path = "outcomes.db"
system = "node-k"
%s
`, addr, tc.journal)
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			p := startServe(t, bin, dir, cfgPath, addr)

			// Hold the store: an exclusive transaction on the database file
			// makes every write of serve wait (busy_timeout) until rollback.
			db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "outcomes.db")+"?_pragma=busy_timeout(60000)")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			countRows := func() (rows, ids int) {
				t.Helper()
				if err := db.QueryRow(`SELECT count(*), count(DISTINCT uniqueid) FROM outcomes WHERE system = 'node-k' AND kind = 'sign'`).Scan(&rows, &ids); err != nil {
					t.Fatal(err)
				}
				return rows, ids
			}
			conn, err := db.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.ExecContext(context.Background(), `BEGIN EXCLUSIVE`); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				p.sign(t, i)
			}
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-p.exited
			if _, err := conn.ExecContext(context.Background(), `ROLLBACK`); err != nil {
				t.Fatal(err)
			}
			conn.Close()
			if rows, _ := countRows(); rows != 0 {
				t.Fatalf("%d rows stored while the store was held; the test holds nothing", rows)
			}

			// Start again: the journal is read into the store at start. Stop
			// with SIGTERM, which drains, so that what is stored is final.
			p = startServe(t, bin, dir, cfgPath, addr)
			if tc.journal == "" {
				deadline := time.Now().Add(3 * time.Minute)
				for rows, _ := countRows(); rows < n && time.Now().Before(deadline); rows, _ = countRows() {
					time.Sleep(20 * time.Millisecond)
				}
			}
			p.cmd.Process.Signal(syscall.SIGTERM)
			<-p.exited
			rows, ids := countRows()
			if tc.journal != "" {
				if rows >= n {
					t.Fatalf("journal off: %d of %d outcomes survived SIGKILL; the harness cannot see a loss", rows, n)
				}
				t.Logf("journal off: %d of %d outcomes survived SIGKILL", rows, n)
				return
			}
			if rows != n || ids != n {
				t.Fatalf("after SIGKILL and restart: %d rows, %d distinct outcomes; want %d of each", rows, ids, n)
			}
			if b, _ := os.ReadFile(p.log); !strings.Contains(string(b), "outcome journal replayed") {
				t.Errorf("the restarted serve did not replay the journal:\n%s", b)
			}
			left, _ := filepath.Glob(filepath.Join(dir, ".stirgate", "journal", "serve", "*"))
			if len(left) != 0 {
				t.Errorf("journal files left after a clean stop: %v", left)
			}
		})
	}
}
