package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/ami"
	"github.com/stirgate/stirgate/ami/amitest"
	"github.com/stirgate/stirgate/outcome"
)

// amiConfig writes a config whose [store] lives in dir and whose [ami]
// points at addr.
func amiConfig(t *testing.T, dir, addr string) string {
	t.Helper()
	p := filepath.Join(dir, "stirgate.toml")
	cfg := fmt.Sprintf(`
[ami]
address = %q
username = "stirgate"
secret = "s3cret"
ping_interval = "200ms"
system = "pbx-test"

[store]
path = "outcomes.db"
spill_path = "spill.jsonl"
`, addr)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReportFormats(t *testing.T) {
	dir := t.TempDir()
	cfg := amiConfig(t, dir, "127.0.0.1:5038")
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(dir, "outcomes.db")})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var os []outcome.Outcome
	for i, r := range []struct{ result, attest, err, x5u, orig string }{
		{"pass", "A", "", "", "1"}, {"pass", "A", "", "", "2"}, {"fail", "B", "x5u_fetch_failed", "https://bad.example/a.pem", "3"},
		{"fail", "", "cert_untrusted", "https://bad.example/b.pem", "3"}, {"none", "", "no_identity", "", "4"},
	} {
		os = append(os, outcome.Outcome{Time: now.Add(-time.Duration(i) * time.Minute), System: "pbx-test", UniqueID: fmt.Sprint(i),
			Kind: "verify", Result: r.result, Attest: r.attest, ErrorName: r.err, X5U: r.x5u, Orig: r.orig})
	}
	os = append(os, outcome.Outcome{Time: now.Add(-72 * time.Hour), System: "pbx-test", UniqueID: "old", Kind: "verify", Result: "pass"})
	if err := st.RecordBatch(context.Background(), os); err != nil {
		t.Fatal(err)
	}
	st.Close()

	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := runReport(context.Background(), append([]string{"--config", cfg}, args...), &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	t.Run("table", func(t *testing.T) {
		out := run()
		for _, want := range []string{"Inbound (verification)", "Outbound (signing)", "unsigned", "20.0%", "x5u_fetch_failed", "bad.example", "failing origin"} {
			if !strings.Contains(out, want) {
				t.Errorf("table lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		var r outcome.Report
		if err := json.Unmarshal([]byte(run("--format", "json")), &r); err != nil {
			t.Fatal(err)
		}
		if r.Total != 5 || r.Unsigned != 1 || len(r.TopX5UHosts) != 1 || r.TopX5UHosts[0] != (outcome.Count{Key: "bad.example", N: 2}) {
			t.Errorf("report %+v", r)
		}
		if r.Inbound.Total != 5 || r.Inbound.Failures != 2 || r.Outbound.Total != 0 {
			t.Errorf("directions %+v / %+v", r.Inbound, r.Outbound)
		}
		var all outcome.Report
		out := run("--format", "json", "--since", "")
		json.Unmarshal([]byte(out), &all)
		if all.Total != 6 {
			t.Errorf("--since '' total %d, want 6", all.Total)
		}
		// An open period has no bounds to print.
		var raw map[string]any
		json.Unmarshal([]byte(out), &raw)
		if _, ok := raw["until"]; ok {
			t.Errorf("open report has until: %v", raw["until"])
		}
		if _, ok := raw["since"]; ok {
			t.Errorf("report since the beginning has since: %v", raw["since"])
		}
	})
	t.Run("csv", func(t *testing.T) {
		rows, err := csv.NewReader(strings.NewReader(run("--format", "csv"))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		// One field per column: the error's share is of the 2 failures.
		found, hours := false, 0
		for _, r := range rows {
			if strings.Join(r, "|") == "inbound|error|x5u_fetch_failed||1|0.5000" {
				found = true
			}
			if r[1] == "hour" && r[0] == "inbound" && r[3] != "" && !strings.Contains(r[2], "/") {
				hours++
			}
		}
		if !found || strings.Join(rows[0], ",") != "direction,section,key,hour,count,share" || hours == 0 {
			t.Errorf("csv rows %v", rows)
		}
	})
	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{{"--format", "xml"}, {"--since", "last week"}, {"--config", filepath.Join(dir, "missing.toml")}} {
			var out, errb bytes.Buffer
			if code := runReport(context.Background(), args, &out, &errb); code != exitUsage || errb.Len() == 0 {
				t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
			}
		}
	})
}

// startAMICommand runs `stirgate ami --config cfg` and returns once it has
// logged in to p. stop ends it as SIGTERM does and returns its exit code;
// stderr is its log.
func startAMICommand(t *testing.T, cfg string, p *amitest.Peer) (stop func() int, stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	stderr = &syncBuffer{}
	go func() { done <- runAMI(ctx, []string{"--config", cfg}, &bytes.Buffer{}, stderr) }()
	stop = func() int {
		cancel()
		return <-done
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.Sessions() == 0 {
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("no login; stderr: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return stop, stderr
}

// TestRunAMI: `stirgate ami --config` logs in to the peer, records an
// event, and on SIGTERM (ctx) drains and exits 0.
func TestRunAMI(t *testing.T) {
	p, err := amitest.Listen("127.0.0.1:0", amitest.Options{Username: "stirgate", Secret: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dir := t.TempDir()
	cfg := amiConfig(t, dir, p.Addr())
	stop, errb := startAMICommand(t, cfg, p)
	p.Emit(ami.Message{{Key: "Event", Value: "UserEvent"}, {Key: "UserEvent", Value: "StirShaken"}, {Key: "Uniqueid", Value: "1700000000.1"},
		{Key: "STIR_RESULT", Value: "pass"}, {Key: "STIR_ATTEST", Value: "A"}})
	time.Sleep(200 * time.Millisecond)
	if code := stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if strings.Contains(errb.String(), "s3cret") {
		t.Error("secret in the log")
	}
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(dir, "outcomes.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, _ := st.Query(context.Background(), outcome.Filter{})
	if len(got) != 1 || got[0].System != "pbx-test" || got[0].Result != "pass" || got[0].Attest != "A" {
		t.Errorf("rows %+v", got)
	}
}

// TestRunAMIStoreDown: PostgreSQL is not reachable when `stirgate ami`
// starts. It runs anyway and the event it receives is in the spill file,
// ready for replay.
func TestRunAMIStoreDown(t *testing.T) {
	p, err := amitest.Listen("127.0.0.1:0", amitest.Options{Username: "stirgate", Secret: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dead, err := amitest.Listen("127.0.0.1:0", amitest.Options{}) // a port that then closes
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr()
	dead.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "stirgate.toml")
	cfg := fmt.Sprintf(`
[ami]
address = %q
username = "stirgate"
secret = "s3cret"
system = "pbx-test"

[store]
dsn = "postgres://stirgate:pw@%s/stirgate?sslmode=disable&connect_timeout=1"
spill_path = "spill.jsonl"
`, p.Addr(), deadAddr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	stop, errb := startAMICommand(t, cfgPath, p)
	deadline := time.Now().Add(10 * time.Second)
	p.Emit(ami.Message{{Key: "Event", Value: "UserEvent"}, {Key: "UserEvent", Value: "StirShaken"}, {Key: "Uniqueid", Value: "1700000000.9"},
		{Key: "STIR_RESULT", Value: "fail"}})
	spill := filepath.Join(dir, "spill.jsonl")
	for {
		b, _ := os.ReadFile(spill)
		b2, _ := os.ReadFile(spill + ".replay")
		if strings.Contains(string(b)+string(b2), "1700000000.9") {
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("event not spilled; stderr: %s", errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if strings.Contains(errb.String(), "pw@") {
		t.Error("DSN password in the log")
	}
}
