package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stirgate/stirgate/agi/agitest"
	"github.com/stirgate/stirgate/outcome"
)

// syncBuffer is a log buffer the command under test writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func agiFreePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestAGICommand runs `stirgate agi` on a lab config: a sign session over
// FastAGI, a SIGHUP reload, a graceful stop, and the outcome in the store.
func TestAGICommand(t *testing.T) {
	dir := t.TempDir()
	addr := agiFreePort(t)
	metricsAddr := agiFreePort(t)
	cfg := filepath.Join(dir, "stirgate.toml")
	conf := `[lab]
dir = "lab"

[policy]
default = ""

[[policy.customer]]
name = "pbx"
numbers = ["12155550121"]

[[policy.customer]]
name = "reseller"

[agi]
listen = "` + addr + `"
session_timeout = "2s"
shutdown_grace = "2s"
system = "pbx-test"
metrics_listen = "` + metricsAddr + `"

[store]
path = "outcomes.db"
spill_path = "spill.jsonl"
`
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() { exit <- runAGI(ctx, []string{"--config", cfg}, &stdout, &stderr) }()

	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "agi listening") {
		select {
		case code := <-exit:
			t.Fatalf("exited %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not listening: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	tr, err := agitest.Channel{Script: "sign", CallerID: "2155550121", Exten: "12155550131", UniqueID: "1768478400.1", Args: []string{"attest=A", "customer=pbx"}}.Run(pctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Set["STIR_RESULT"] != "signed" || tr.Set["STIR_ATTEST"] != "A" || !strings.Contains(tr.Set["STIR_IDENTITY"], ";info=<https://") {
		t.Fatalf("sign session set %v", tr.Set)
	}
	// Policy decides attestation: agi://host/sign?attest=A from a source no
	// customer owns ([policy] default = "") is not signed, and a customer
	// granted B (the number is not theirs) asking A gets B.
	tr, err = agitest.Channel{Script: "sign?attest=A", CallerID: "2155550199", Exten: "12155550131", UniqueID: "1768478400.3"}.Run(pctx, addr)
	if err != nil || tr.Set["STIR_RESULT"] != "unsigned" || tr.Set["STIR_ERROR"] != "sign_not_allowed" || tr.Set["STIR_IDENTITY"] != "" {
		t.Fatalf("attest=A from an unknown source: %v %v", err, tr.Set)
	}
	tr, err = agitest.Channel{Script: "sign?attest=A&customer=reseller", CallerID: "2155550199", Exten: "12155550131", UniqueID: "1768478400.4"}.Run(pctx, addr)
	if err != nil || tr.Set["STIR_RESULT"] != "signed" || tr.Set["STIR_ATTEST"] != "B" {
		t.Fatalf("attest=A from a customer granted B: %v %v", err, tr.Set)
	}

	// SIGHUP reloads; the server keeps answering.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(stderr.String(), "config reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	tr, err = agitest.Channel{Script: "sign", CallerID: "2155550121", Exten: "12155550131", UniqueID: "1768478400.2", Args: []string{"attest=B", "customer=pbx"}}.Run(pctx, addr)
	if err != nil || tr.Set["STIR_RESULT"] != "signed" || tr.Set["STIR_ATTEST"] != "B" {
		t.Fatalf("after reload: %v %v", err, tr.Set)
	}

	// The process's own /metrics counts both sessions, the reload and the
	// signing chain's expiry.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`stirgate_requests_total{error="",op="sign",result="signed",surface="agi"} 3`,
		`stirgate_requests_total{error="sign_not_allowed",op="sign",result="unsigned",surface="agi"} 1`,
		`stirgate_sign_duration_seconds_count{surface="agi"} 4`,
		`stirgate_build_info{goversion="go`,
		`stirgate_reloads_total{result="ok"} 1`,
		`stirgate_signing_cert_not_after_timestamp_seconds{`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
	if resp, err := http.Get("http://" + metricsAddr + "/healthz"); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}

	cancel()
	select {
	case code := <-exit:
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop")
	}

	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(dir, "outcomes.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out, err := st.Query(context.Background(), outcome.Filter{System: "pbx-test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 4 {
		t.Fatalf("stored %d outcomes: %+v\n%s", len(out), out, stderr.String())
	}
	results := map[string]int{}
	for _, o := range out {
		if o.Kind != "sign" || o.Source != outcome.SourceAGI {
			t.Errorf("outcome %+v", o)
		}
		results[o.Result+"/"+o.Orig]++
	}
	if results["signed/12155550121"] != 2 || results["signed/12155550199"] != 1 || results["unsigned/2155550199"] != 1 {
		t.Errorf("outcomes %v", results)
	}
}

func TestAGICommandUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad flag", []string{"--nope"}, "flag provided but not defined"},
		{"missing config", []string{"--config", "/nonexistent/stirgate.toml"}, "stirgate agi:"},
		{"exposed listen without allow", []string{"--listen", "0.0.0.0:0"}, "agi.allow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := runAGI(context.Background(), tt.args, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q", code, errb.String())
			}
		})
	}
}
