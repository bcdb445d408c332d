package certs_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
)

func TestAnchorsCheck(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	a1, err := certs.NewLab(certs.LabOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := certs.NewLab(certs.LabOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "anchors.pem")
	n := 0
	write := func(b []byte) {
		t.Helper()
		n++
		tmp := filepath.Join(dir, "tmp.pem")
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		// A distinct mtime per version, whatever the file system's clock
		// granularity.
		mt := now.Add(time.Duration(n) * time.Second)
		if err := os.Chtimes(tmp, mt, mt); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write(certs.EncodePEM(a1.Root))
	clock := now
	var logs bytes.Buffer
	a, err := certs.LoadAnchors(certs.AnchorOptions{Files: []string{file}, CheckInterval: time.Minute,
		Now: func() time.Time { return clock }, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	trusts := func(l *certs.Lab) bool {
		_, err := certs.Verify(l.Chain(), certs.VerifyOptions{Roots: a.Pool(), CurrentTime: now})
		return err == nil
	}
	if !trusts(a1) || trusts(a2) {
		t.Fatal("initial pool")
	}

	write(certs.EncodePEM(a2.Root))
	if a.Check() {
		t.Fatal("reloaded before CheckInterval")
	}
	clock = clock.Add(time.Minute)
	if !a.Check() || !trusts(a2) || trusts(a1) || a.Generation() != 1 {
		t.Fatal("not reloaded after CheckInterval")
	}
	clock = clock.Add(time.Minute)
	if a.Check() {
		t.Fatal("reloaded an unchanged file")
	}

	// Same content, new mtime: no new generation.
	write(certs.EncodePEM(a2.Root))
	clock = clock.Add(time.Minute)
	if a.Check() || a.Generation() != 1 {
		t.Fatal("same content counted as a change")
	}

	// Broken and missing files keep the pool, and are logged once each.
	write([]byte("garbage"))
	for range 3 {
		clock = clock.Add(time.Minute)
		if a.Check() || !trusts(a2) {
			t.Fatal("broken file replaced the pool")
		}
	}
	os.Remove(file)
	for range 3 {
		clock = clock.Add(time.Minute)
		if a.Check() || !trusts(a2) {
			t.Fatal("missing file replaced the pool")
		}
	}
	if strings.Count(logs.String(), "changed file refused") != 1 || strings.Count(logs.String(), "cannot stat") != 1 {
		t.Fatalf("logs:\n%s", logs.String())
	}
	write(certs.EncodePEM(a1.Root, a2.Root))
	clock = clock.Add(time.Minute)
	if !a.Check() || !trusts(a1) || !trusts(a2) {
		t.Fatal("not reloaded after the file came back")
	}
}
