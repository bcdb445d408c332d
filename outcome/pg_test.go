package outcome

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stirgate/stirgate/internal/testdeps"
)

// pgServer is a throwaway PostgreSQL cluster on a loopback port, started
// once for the package by TestMain. A machine without Debian's postgresql
// package fails the PostgreSQL tests; it never skips them.
type pgServer struct {
	dir, port, bin string
	asUser         string // run server binaries as this user (root cannot)
	err            error
}

var pg pgServer

func TestMain(m *testing.M) {
	pg.err = pg.start()
	code := m.Run()
	pg.stop()
	os.Exit(code)
}

func (p *pgServer) cmd(name string, args ...string) *exec.Cmd {
	path := filepath.Join(p.bin, name)
	if p.asUser != "" {
		return exec.Command("runuser", append([]string{"-u", p.asUser, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (p *pgServer) start() error {
	initdb, err := testdeps.Find("postgresql", "/usr/lib/postgresql/*/bin/initdb")
	if err != nil {
		return err
	}
	p.bin = filepath.Dir(initdb)
	dir, err := os.MkdirTemp("", "stirgate-pg-")
	if err != nil {
		return err
	}
	p.dir = dir
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root; hand the cluster to the
		// package's own system user.
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root and no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return err
		}
		p.asUser = "postgres"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	_, p.port, _ = net.SplitHostPort(l.Addr().String())
	l.Close()

	data := filepath.Join(dir, "data")
	if out, err := p.cmd("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	opts := fmt.Sprintf("-p %s -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off", p.port, dir)
	if out, err := p.cmd("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	return nil
}

func (p *pgServer) stop() {
	if p.dir == "" {
		return
	}
	p.cmd("pg_ctl", "-D", filepath.Join(p.dir, "data"), "-m", "immediate", "-w", "stop").Run()
	os.RemoveAll(p.dir)
}

func (p *pgServer) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%s/%s?sslmode=disable", p.port, db)
}

var pgDBs atomic.Int64

// newPostgresDB creates an empty database for one test and returns its DSN.
func newPostgresDB(t *testing.T) string {
	t.Helper()
	if pg.err != nil {
		t.Fatalf("PostgreSQL test server did not start: %v", pg.err)
	}
	name := "t" + strconv.FormatInt(pgDBs.Add(1), 10) + "_" + strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
	if len(name) > 60 {
		name = name[:60]
	}
	admin, err := sql.Open("pgx", pg.dsn("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return pg.dsn(name)
}
