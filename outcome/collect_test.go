package outcome

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stirgate/stirgate/outcome/spool"
)

// TestSpoolRecordMatchesOutcome: every field of a spool line is a field of
// Outcome of the same kind, so the collector loses nothing.
func TestSpoolRecordMatchesOutcome(t *testing.T) {
	rt, ot := reflect.TypeFor[spool.Record](), reflect.TypeFor[Outcome]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		g, ok := ot.FieldByName(f.Name)
		if !ok || g.Type.Kind() != f.Type.Kind() || g.Type.String() != f.Type.String() && f.Type.Kind() != reflect.String {
			t.Errorf("spool.Record.%s (%s) has no Outcome counterpart", f.Name, f.Type)
		}
	}
}

func openSQLiteT(t *testing.T) Store {
	t.Helper()
	st, err := Open(context.Background(), Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func spoolRec(id string) spool.Record {
	return spool.Record{Time: t0, System: "kam1", UniqueID: id, Kind: KindVerify, Direction: "inbound", Result: "fail",
		ErrorName: "orig_mismatch", SIPCode: 438, Orig: "12155550121", Dest: "12155550131", X5U: "https://cert.example/a.pem",
		Source: "kamailio", Peer: "192.0.2.1"}
}

// TestCollectSealed: sealed files are stored and removed; a file read
// twice (a crash between store and remove) adds no row.
func TestCollectSealed(t *testing.T) {
	dir := t.TempDir()
	st := openSQLiteT(t)
	w, err := spool.Open(spool.Options{Dir: dir, SealEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		w.Record(spoolRec("c" + strconv.Itoa(i)))
	}
	// Open, locked by a live writer: not touched.
	if n, err := Collect(context.Background(), st, CollectOptions{Dir: dir}); err != nil || n != 0 {
		t.Fatalf("collected %d (%v) from a live writer's file", n, err)
	}
	if err := w.Seal(); err != nil {
		t.Fatal(err)
	}
	sealed, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if len(sealed) != 1 {
		t.Fatalf("sealed files %v", sealed)
	}
	dup, _ := os.ReadFile(sealed[0])
	n, err := Collect(context.Background(), st, CollectOptions{Dir: dir, BatchSize: 100})
	if err != nil || n != 1000 {
		t.Fatalf("collected %d, %v", n, err)
	}
	if _, err := os.Stat(sealed[0]); !os.IsNotExist(err) {
		t.Errorf("collected file not removed: %v", err)
	}
	// The same file again: no new row.
	if err := os.WriteFile(sealed[0], dup, 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := Collect(context.Background(), st, CollectOptions{Dir: dir}); err != nil || n != 1000 {
		t.Fatalf("second pass %d, %v", n, err)
	}
	rows, err := st.Query(context.Background(), Filter{Limit: MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1000 {
		t.Fatalf("%d rows, want 1000", len(rows))
	}
	if o := rows[0]; o.System != "kam1" || o.X5U == "" || o.Peer != "192.0.2.1" || o.SIPCode != 438 || o.Source != "kamailio" {
		t.Errorf("row %+v", o)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left in spool: %v", left)
	}
}

// TestCollectKilledWriter: a process killed with SIGKILL (Kamailio
// restarted, a worker crashed) leaves its open file; once its lock is gone
// the collector stores every complete line and skips a torn last one.
func TestCollectKilledWriter(t *testing.T) {
	if os.Getenv("STIRGATE_SPOOL_CHILD") != "" {
		spoolChild()
		return
	}
	dir := t.TempDir()
	st := openSQLiteT(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCollectKilledWriter$")
	cmd.Env = append(os.Environ(), "STIRGATE_SPOOL_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// The child says "written" once its records are in the file.
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "written" {
	}
	if n, err := Collect(context.Background(), st, CollectOptions{Dir: dir}); err != nil || n != 0 {
		t.Fatalf("collected %d (%v) while the writer lives", n, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// Its segment and its spare are left, open and unlocked.
	parts, _ := filepath.Glob(filepath.Join(dir, "*"+spool.SuffixOpen))
	if len(parts) != 2 {
		t.Fatalf("open files %v", parts)
	}
	// A torn record after the last whole one, as a kill mid-copy leaves.
	data, err := os.ReadFile(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	end := strings.IndexByte(string(data), 0)
	if end <= 0 {
		t.Fatalf("first segment holds nothing (end %d)", end)
	}
	f, err := os.OpenFile(parts[0], os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(`{"Time":"2026-11-23T10:00:00Z","System":"kam1","Uniq`), int64(end)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	n, err := Collect(context.Background(), st, CollectOptions{Dir: dir})
	if err != nil || n != 50 {
		t.Fatalf("collected %d, %v; want 50", n, err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left in spool: %v", left)
	}
}

func spoolChild() {
	w, err := spool.Open(spool.Options{Dir: os.Getenv("STIRGATE_SPOOL_CHILD"), SealEvery: time.Hour})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := range 50 {
		w.Record(spoolRec("k" + strconv.Itoa(i)))
	}
	fmt.Println("written")
	select {} // until killed
}

// TestCollectStoreDown: when the store refuses, the file stays and is
// stored by a later pass.
func TestCollectStoreDown(t *testing.T) {
	dir := t.TempDir()
	w, err := spool.Open(spool.Options{Dir: dir, SealEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	w.Record(spoolRec("d1"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	down, err := Open(context.Background(), Options{Path: filepath.Join(t.TempDir(), "down.db")})
	if err != nil {
		t.Fatal(err)
	}
	down.Close() // a store that no longer answers
	if _, err := Collect(context.Background(), down, CollectOptions{Dir: dir}); err == nil {
		t.Fatal("no error from a store that is down")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.jsonl")); len(left) != 1 {
		t.Fatalf("file not kept: %v", left)
	}
	st := openSQLiteT(t)
	if n, err := Collect(context.Background(), st, CollectOptions{Dir: dir}); err != nil || n != 1 {
		t.Fatalf("collected %d, %v", n, err)
	}
}
