// Package pgtest runs a throwaway PostgreSQL cluster for tests: Debian's
// postgresql package, initdb in a temporary directory, its own port, no
// fsync. A machine without the package installs it (as root) or fails the
// test; it never skips.
package pgtest

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
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/stirgate/stirgate/internal/testdeps"
)

// Options tunes Start; the zero value is a server on a free loopback port.
type Options struct {
	// Listen is the address to listen on (default 127.0.0.1).
	Listen string
	// Port, when set, is used instead of a free loopback port (a server in
	// a network namespace of its own has every port free).
	Port string
	// Wrap prefixes the server commands, e.g. {"ip", "netns", "exec", ns}
	// to start it inside a network namespace.
	Wrap []string
	// HBA lines are added to pg_hba.conf (initdb trusts only loopback),
	// e.g. "host all all 10.250.0.0/24 trust".
	HBA []string
}

// Server is one running cluster.
type Server struct {
	Dir, Port, Listen string

	bin    string
	asUser string // run server binaries as this user (root cannot)
	wrap   []string
	dbs    atomic.Int64
}

// Start initialises and starts a cluster. Stop it with Stop.
func Start(o Options) (*Server, error) {
	initdb, err := testdeps.Find("postgresql", "/usr/lib/postgresql/*/bin/initdb")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: filepath.Dir(initdb), Listen: o.Listen, Port: o.Port, wrap: o.Wrap}
	if s.Listen == "" {
		s.Listen = "127.0.0.1"
	}
	dir, err := os.MkdirTemp("", "stirgate-pg-")
	if err != nil {
		return nil, err
	}
	s.Dir = dir
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root; hand the cluster to the
		// package's own system user.
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root and no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.asUser = "postgres"
	}
	if s.Port == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		_, s.Port, _ = net.SplitHostPort(l.Addr().String())
		l.Close()
	}
	data := filepath.Join(dir, "data")
	if out, err := s.cmd("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if len(o.HBA) > 0 {
		f, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteString(strings.Join(o.HBA, "\n") + "\n")
			f.Close()
		}
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pg_hba.conf: %w", err)
		}
	}
	opts := fmt.Sprintf("-p %s -k %s -c listen_addresses=%s -c fsync=off -c synchronous_commit=off -c max_connections=200", s.Port, dir, s.Listen)
	if out, err := s.cmd("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	return s, nil
}

func (s *Server) cmd(name string, args ...string) *exec.Cmd {
	argv := append([]string(nil), s.wrap...)
	if s.asUser != "" {
		argv = append(argv, "runuser", "-u", s.asUser, "--")
	}
	argv = append(argv, filepath.Join(s.bin, name))
	argv = append(argv, args...)
	return exec.Command(argv[0], argv[1:]...)
}

// Stop stops the server and removes its files; safe on nil.
func (s *Server) Stop() {
	if s == nil || s.Dir == "" {
		return
	}
	s.cmd("pg_ctl", "-D", filepath.Join(s.Dir, "data"), "-m", "immediate", "-w", "stop").Run()
	os.RemoveAll(s.Dir)
}

// DSN is the URL of database db.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", net.JoinHostPort(s.Listen, s.Port), db)
}

// NewDB creates an empty database named after hint and returns its DSN.
func (s *Server) NewDB(ctx context.Context, hint string) (string, error) {
	name := "t" + strconv.FormatInt(s.dbs.Add(1), 10) + "_" + strings.ToLower(strings.NewReplacer("/", "_", "-", "_", " ", "_").Replace(hint))
	if len(name) > 60 {
		name = name[:60]
	}
	admin, err := sql.Open("pgx", s.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	return s.DSN(name), nil
}
