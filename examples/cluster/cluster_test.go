// Package cluster holds the cluster example (Kamailio's dispatcher in
// front of several `stirgate serve` nodes sharing one PostgreSQL) and the
// test that proves it: see TestCluster and the README.
package cluster

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/internal/pgtest"
	"github.com/stirgate/stirgate/kamailio/kamtest"
)

// The hosts of the test network.
var hosts = map[string]string{
	"pg":    "10.250.0.2",
	"kam":   "10.250.0.3",
	"cli":   "10.250.0.4",
	"x5u":   "10.250.0.20",
	"node1": "10.250.0.11",
	"node2": "10.250.0.12",
	"node3": "10.250.0.13",
}

var nodes = []string{"node1", "node2", "node3"}

const (
	calls    = 150 // calls SIPp makes, each a signing and a verification
	rate     = 15  // calls per second
	killAt   = 40  // node2 is stopped once this many calls are recorded
	x5uPath  = "/sp.pem"
	httpPort = "8080"
)

// TestCluster runs three `stirgate serve` nodes behind Kamailio's
// dispatcher, each on its own host (network namespace), sharing one
// PostgreSQL for outcomes and the x5u cache. SIPp signs and verifies
// through Kamailio at a fixed rate; node2 is killed (SIGKILL) mid-run and
// started again after the run, when it stores what its journal kept. Every
// call must succeed, the certificate must be fetched once for the cluster, every
// outcome must be in the shared store once with its node, and the
// dashboard must count each node's share.
func TestCluster(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the cluster test creates network namespaces: run it as root (make test does)")
	}
	for _, p := range []string{"ip", "sipp", kamtest.KamailioBinary()} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is not installed (make test-deps): %v", p, err)
		}
	}
	bin := stirgateBin(t)
	dir := t.TempDir()
	l := newLAN(t, hosts)

	// The certificate repository: counts its fetches.
	var fetches sync.Map // path → *atomic.Int64
	lab, err := certs.NewLab(certs.LabOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	chainPEM := lab.ChainPEM()
	x5uURL := "http://" + net.JoinHostPort(hosts["x5u"], httpPort) + x5uPath
	var ln net.Listener
	if err := l.inNS("x5u", func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(hosts["x5u"], httpPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	x5uSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := fetches.LoadOrStore(r.URL.Path, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		if r.URL.Path != x5uPath {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/pem-certificate-chain")
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(chainPEM)
	}), ReadHeaderTimeout: 10 * time.Second}
	go x5uSrv.Serve(ln)
	t.Cleanup(func() { x5uSrv.Close() })

	// PostgreSQL on its own host.
	pg, err := pgtest.Start(pgtest.Options{
		Listen: hosts["pg"], Port: "5432",
		Wrap: []string{"ip", "netns", "exec", l.ns("pg")},
		HBA:  []string{"host all all 10.250.0.0/24 trust"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	dsn := pg.DSN("postgres")

	// The nodes' files: the signing credential and the trust anchor.
	keyPEM, err := lab.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "sp.key"), keyPEM)
	write(t, filepath.Join(dir, "sp.pem"), chainPEM)
	write(t, filepath.Join(dir, "root.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: lab.Root.Raw}))

	running := map[string]*node{}
	for _, n := range nodes {
		// One at a time: the first creates the schemas.
		running[n] = startNode(t, l, bin, dir, n, dsn, x5uURL)
	}

	// Kamailio with the dispatcher list of the three nodes.
	var list strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&list, "1 sip:%s:5060\n", hosts[n])
	}
	write(t, filepath.Join(dir, "dispatcher.list"), []byte(list.String()))
	wrapper := filepath.Join(dir, "kamailio-in-ns")
	write(t, wrapper, []byte("#!/bin/sh\nexec ip netns exec "+l.ns("kam")+" "+kamtest.KamailioBinary()+" \"$@\"\n"))
	os.Chmod(wrapper, 0o755)
	t.Setenv("KAMAILIO", wrapper)
	k := kamtest.Start(t, kamtest.Options{
		Config:   "kamailio.cfg",
		Host:     hosts["kam"],
		Port:     5060,
		Children: 4,
		// A node slower than FR_TIMER would be skipped and the call signed
		// twice; the test machine may be loaded, so give it 3 s.
		Defines: []string{`DS_LIST="` + filepath.Join(dir, "dispatcher.list") + `"`, "FR_TIMER=3000"},
		Ready: func(ctx context.Context, k *kamtest.Kamailio) error {
			return l.inNS("kam", func() error { return kamtest.ProbeOPTIONS(ctx, k) })
		},
	})

	if *demo {
		holdDemo(t, l, k, dir)
		return
	}

	// The shared store, read from the PostgreSQL host's network.
	db := openDB(t, l, dsn)
	count := func() int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM outcomes`).Scan(&n); err != nil {
			t.Logf("count: %v", err)
		}
		return n
	}

	// SIPp on the client host, at a fixed rate.
	sdir := t.TempDir()
	sipp := l.cmd("cli", "sipp", "-sf", mustAbs(t, "call.xml"),
		"-i", hosts["cli"], "-p", "5060", "-t", "u1",
		"-r", strconv.Itoa(rate), "-m", strconv.Itoa(calls), "-l", strconv.Itoa(4*rate),
		"-nostdin", "-timeout", "180s", "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(sdir, "errors.log"),
		"-trace_stat", "-fd", "1", "-stf", filepath.Join(sdir, "stat.csv"),
		k.Addr)
	var sout strings.Builder
	sipp.Stdout, sipp.Stderr = &sout, &sout
	if err := sipp.Start(); err != nil {
		t.Fatal(err)
	}
	sippDone := make(chan error, 1)
	go func() { sippDone <- sipp.Wait() }()
	t.Cleanup(func() { sipp.Process.Kill() })

	// Kill node2 once killAt calls (2 outcomes each) are in the store: the
	// load is on, and node2 has had its share. SIGKILL, not SIGTERM: its
	// queued outcomes survive only in its journal.
	stopped := false
	for !stopped {
		select {
		case err := <-sippDone:
			t.Fatalf("sipp ended before node2 was stopped: %v\n%s", err, sout.String())
		case <-time.After(50 * time.Millisecond):
			if count() >= 2*killAt {
				running["node2"].kill(t)
				stopped = true
			}
		}
	}
	if err := <-sippDone; err != nil {
		e, _ := os.ReadFile(filepath.Join(sdir, "errors.log"))
		t.Fatalf("sipp: %v\n%s\n--- errors:\n%s", err, tail(sout.String(), 3000), tail(string(e), 3000))
	}
	st, err := kamtest.ReadStats(filepath.Join(sdir, "stat.csv"))
	if err != nil {
		t.Fatal(err)
	}
	// Whether an INVITE met node2 gone (then Kamailio failed over) or the
	// OPTIONS probe found it first depends on timing; both must cost no
	// call. Say which it was.
	t.Logf("sipp: %s; Kamailio failovers: %d", st, strings.Count(k.Log(), "dispatcher failover:"))
	if st.Successful != calls || st.Failed != 0 {
		t.Errorf("calls: %s; want %d successful, 0 failed", st, calls)
	}

	// One fetch of the certificate for the whole cluster.
	fetches.Range(func(k, v any) bool {
		if n := v.(*atomic.Int64).Load(); k != x5uPath || n != 1 {
			t.Errorf("x5u server: %d fetches of %s; want 1 of %s for the cluster", n, k, x5uPath)
		}
		return true
	})
	if _, ok := fetches.Load(x5uPath); !ok {
		t.Errorf("x5u server: the certificate was never fetched")
	}

	// Every outcome once, with its node. The survivors' writers flush
	// asynchronously: wait for the last rows. node2 starts again and
	// stores what its journal kept through the SIGKILL.
	running["node2"] = startNode(t, l, bin, dir, "node2", dsn, x5uURL)
	if !strings.Contains(running["node2"].log.String(), "journal: replaying") {
		t.Errorf("node2 found no journal to replay after SIGKILL:\n%s", tail(running["node2"].log.String(), 3000))
	}
	for _, n := range nodes {
		running[n].stop(t)
	}
	for _, line := range strings.Split(running["node2"].log.String(), "\n") {
		if strings.Contains(line, "outcome journal replayed") {
			t.Logf("node2 after SIGKILL: %s", line)
		}
	}
	rows, err := db.Query(`SELECT system, uniqueid, kind, result FROM outcomes`)
	if err != nil {
		t.Fatal(err)
	}
	perNode := map[string]int{}
	perCall := map[string][]string{} // systems
	for rows.Next() {
		var system, id, kind, result string
		if err := rows.Scan(&system, &id, &kind, &result); err != nil {
			t.Fatal(err)
		}
		perNode[system]++
		perCall[id+" "+kind] = append(perCall[id+" "+kind], system)
		if want := map[string]string{"sign": "signed", "verify": "pass"}[kind]; result != want {
			t.Errorf("outcome %s %s on %s: result %q, want %q", id, kind, system, result, want)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(perCall) != 2*calls {
		t.Errorf("%d distinct (call, kind) outcomes in the store, want %d", len(perCall), 2*calls)
	}
	// A call node2 answered in the instant it was killed (recorded, the
	// 302 not yet sent) was answered again by another node after
	// Kamailio's failover: two true records of two answers, one of them
	// node2's. Anything else twice is a fault.
	dups := 0
	for k, systems := range perCall {
		switch {
		case len(systems) == 1:
		case len(systems) == 2 && slices.Contains(systems, "node2") && systems[0] != systems[1]:
			dups++
			t.Logf("outcome %s answered by %v: node2 died before its answer left", k, systems)
		default:
			t.Errorf("outcome %s recorded %d times (%v), want once", k, len(systems), systems)
		}
	}
	total := 0
	for _, n := range nodes {
		if perNode[n] == 0 {
			t.Errorf("no outcome from %s: %v", n, perNode)
		}
		total += perNode[n]
	}
	if total != 2*calls+dups {
		t.Errorf("outcomes per node %v sum to %d, want %d (and no other node)", perNode, total, 2*calls+dups)
	}
	t.Logf("outcomes per node: %v", perNode)

	// The dashboard of any node shows the whole cluster, per node: start
	// node1 again (the store is shared) and read its page.
	n1 := startNode(t, l, bin, dir, "node1", dsn, x5uURL)
	page := get(t, l, "http://"+net.JoinHostPort(hosts["node1"], httpPort)+"/dashboard?since=1h")
	for _, n := range nodes {
		re := regexp.MustCompile(`(?s)<section id="nodes">.*data-key="` + n + `"><td>` + n + `</td><td class="bar"><span[^>]*></span></td><td class="n">` + strconv.Itoa(perNode[n]) + `</td>`)
		if !re.MatchString(page) {
			t.Errorf("dashboard lacks %s with %d outcomes", n, perNode[n])
		}
	}
	n1.stop(t)
}

// demo makes TestCluster stop after start-up and keep the cluster running
// for a user to try, until interrupted: `make cluster-demo`.
var demo = flag.Bool("demo", false, "start the cluster, print how to use it, and wait for Ctrl-C")

// holdDemo prints how to reach the cluster and waits for SIGINT or
// SIGTERM. Node1's dashboard is forwarded to a loopback port of this
// machine, so that a browser can open it; everything else lives in the
// namespaces.
func holdDemo(t *testing.T, l *lan, k *kamtest.Kamailio, dir string) {
	fwd, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	go forward(fwd, l, "cli", net.JoinHostPort(hosts["node1"], httpPort))
	call, _ := filepath.Abs("call.xml")
	fmt.Printf(`
stirgate cluster demo: 3 nodes behind Kamailio's dispatcher, one PostgreSQL.
Hosts (network namespaces %s*):
  kamailio   %s:5060   (namespace %s)
  node1..3   %s, %s, %s   SIP :5060, HTTP :%s
  postgres   %s:5432
  x5u        http://%s:%s%s
Dashboard (node1, whole cluster, per node): http://%s/dashboard
  (user any, password `+dashboardToken+`)

Send signed-then-verified calls (10/s, 300 calls):
  ip netns exec %s sipp -sf %s -i %s -p 5060 -r 10 -m 300 %s
Stop a node and watch the calls go on:
  kill $(ip netns pids %s)
Query the shared store:
  ip netns exec %s psql -h %s -U postgres -c 'SELECT system, kind, count(*) FROM outcomes GROUP BY 1, 2'
Configs and logs: %s
Ctrl-C stops everything and removes the namespaces.
`, l.prefix, k.Host, l.ns("kam"), hosts["node1"], hosts["node2"], hosts["node3"], httpPort, hosts["pg"],
		hosts["x5u"], httpPort, x5uPath, fwd.Addr(), l.ns("cli"), call, hosts["cli"], k.Addr, l.ns("node2"), l.ns("cli"), hosts["pg"], dir)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	<-sig
}

// forward copies connections on ln to addr, dialled from host.
func forward(ln net.Listener, l *lan, host, addr string) {
	dial := l.dialer(host)
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := dial(context.Background(), "tcp", addr)
			if err != nil {
				return
			}
			defer u.Close()
			go io.Copy(u, c)
			io.Copy(c, u)
		}()
	}
}

// node is one running `stirgate serve`.
type node struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuf
}

func startNode(t *testing.T, l *lan, bin, dir, name, dsn, x5uURL string) *node {
	t.Helper()
	addr := hosts[name]
	cfg := fmt.Sprintf(`[log]
level = "info"

[node]
name = %q

[signer]
key = "sp.key"
cert = "sp.pem"
x5u = %q

[[policy.customer]]
name = "sipp"
numbers = ["12155550121"]
sources = [%q]

[verifier]
trust = ["root.pem"]

[x5u]
allow_http = true
lab_hosts = [%q]
shared_dsn = %q

[store]
dsn = %q
spill_path = %q
journal_dir = %q

[http]
listen = %q

# The API listens on the cluster's network, so it must authenticate: one
# read token for the dashboard (signing goes through SIP only).
[[http.token]]
name = "dashboard"
sha256 = %q
scopes = ["read"]

[sip]
allow = ["10.250.0.0/24"]

[[sip.listen]]
address = %q
transport = "udp"
`, name, x5uURL, hosts["kam"], net.JoinHostPort(hosts["x5u"], httpPort), dsn, dsn,
		filepath.Join(dir, name+".spill.jsonl"), filepath.Join(dir, name+".journal"), net.JoinHostPort(addr, httpPort), dashboardTokenHash(), net.JoinHostPort(addr, "5060"))
	path := filepath.Join(dir, name+".toml")
	write(t, path, []byte(cfg))
	n := &node{name: name, cmd: l.cmd(name, bin, "serve", "--config", path), done: make(chan struct{}), log: &syncBuf{}}
	pr, pw := io.Pipe()
	n.cmd.Stdout, n.cmd.Stderr = pw, pw
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			n.log.add(sc.Text())
			if strings.Contains(sc.Text(), "sip redirect listening") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() {
		n.cmd.Wait()
		pw.Close()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.cmd.Process.Kill()
		<-n.done
		if t.Failed() {
			t.Logf("%s log:\n%s", name, tail(n.log.String(), 4000))
		}
	})
	select {
	case <-ready:
	case <-n.done:
		t.Fatalf("%s exited at start:\n%s", name, n.log.String())
	}
	return n
}

// kill sends SIGKILL and waits for the node to exit: nothing drains; what
// its writer had not stored is only in its journal.
func (n *node) kill(t *testing.T) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// stop sends SIGTERM and waits for the node to exit: its SIP listener
// closes (Kamailio's probes and INVITEs go unanswered from then on) and its
// outcome writer drains into the store.
func (n *node) stop(t *testing.T) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	<-n.done
	if !strings.Contains(n.log.String(), "stopped") {
		t.Errorf("%s did not stop cleanly:\n%s", n.name, tail(n.log.String(), 3000))
	}
}

func openDB(t *testing.T, l *lan, dsn string) *sql.DB {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DialFunc = l.dialer("pg")
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { db.Close() })
	return db
}

func get(t *testing.T, l *lan, url string) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: l.dialer("cli")}, Timeout: 30 * time.Second}
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+dashboardToken)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// dashboardToken reads the nodes' dashboards; only its hash is in their
// configuration, as `stirgate token` prints it.
const dashboardToken = "cluster-dashboard-token"

func dashboardTokenHash() string {
	sum := sha256.Sum256([]byte(dashboardToken))
	return hex.EncodeToString(sum[:])
}

// stirgateBin returns the CLI: STIRGATE_BIN (set by make) or a fresh build.
func stirgateBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("STIRGATE_BIN"); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "stirgate")
	if b, err := exec.Command("go", "build", "-o", out, "../../cmd/stirgate").CombinedOutput(); err != nil {
		t.Fatalf("building stirgate: %v\n%s", err, b)
	}
	return out
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) add(line string) {
	s.mu.Lock()
	s.b.WriteString(line + "\n")
	s.mu.Unlock()
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
