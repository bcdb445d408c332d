package kamtest

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRelay runs the whole harness once: SIPp UAC → Kamailio → SIPp UAS.
func TestRelay(t *testing.T) {
	uasPort, err := FreeUDPPort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	uas := SIPp{Scenario: "../sipp/uas.xml", LocalPort: uasPort, Calls: 3, TraceMsg: true, Name: "uas", Timeout: 30 * time.Second}.Start(t)
	k := Start(t, Options{
		Config:   "testdata/relay.cfg",
		Children: 2,
		Defines:  []string{`RELAY_TO="sip:` + uas.Addr() + `"`},
	})
	uac := SIPp{
		Scenario: "../sipp/uac.xml", Remote: k.Addr, Calls: 3, Rate: 10, TraceMsg: true, Name: "uac",
		Timeout: 20 * time.Second,
		Keys: map[string]string{
			"caller": "+12155550121", "callee": "+12155550131", "from_params": ";user=phone",
			"hdr1": "X-Case: relay", "hdr2": "P-Asserted-Identity: <sip:+12155550121@127.0.0.1;user=phone>",
		},
	}.Run(t)
	if err := uac.Err(); err != nil {
		t.Fatalf("uac: %v", err)
	}
	if uac.Stats.Successful != 3 || uac.Stats.Created != 3 {
		t.Errorf("uac stats %s, want 3 created and successful", uac.Stats)
	}
	// Loopback answers within SIPp's millisecond resolution: the value may
	// be 0, but it must be there. How large it is depends on the machine's
	// load, so only its presence and sign are checked.
	if rt, ok := uac.Stats.Raw["ResponseTime1(C)"]; !ok || uac.Stats.ResponseTime < 0 {
		t.Errorf("uac response time %q (%s)", rt, uac.Stats.ResponseTime)
	}
	res := uas.Wait()
	if err := res.Err(); err != nil {
		t.Fatalf("uas: %v", err)
	}
	var invites []string
	for _, m := range res.Received() {
		if strings.HasPrefix(StartLine(m), "INVITE ") {
			invites = append(invites, m)
		}
	}
	if len(invites) != 3 {
		t.Fatalf("uas received %d INVITEs, want 3", len(invites))
	}
	if rr := Header(invites[0], "Record-Route"); len(rr) != 1 || !strings.Contains(rr[0], k.Addr) {
		t.Errorf("relayed INVITE Record-Route %q, want one naming %s", rr, k.Addr)
	}
	if pai := Header(invites[0], "p-asserted-identity"); len(pai) != 1 || !strings.Contains(pai[0], "+12155550121") {
		t.Errorf("relayed INVITE P-Asserted-Identity %q", pai)
	}
	if !strings.HasSuffix(invites[0], "\r\n") || strings.Contains(invites[0], "\r\r") {
		t.Errorf("trace message line endings mangled: %q", invites[0])
	}

	kids, err := k.Children()
	if err != nil {
		t.Fatal(err)
	}
	// 2 UDP workers plus timers, the slow timer and helpers.
	if len(kids) < 3 {
		t.Errorf("%d child processes, want at least 3", len(kids))
	}
	for _, p := range kids {
		if p.RSSKB <= 0 {
			t.Errorf("child %d RSS %d KiB", p.PID, p.RSSKB)
		}
	}
	if err := k.Healthy(); err != nil {
		t.Error(err)
	}
	if err := k.WaitLog(regexp.MustCompile(`(?m)^`), time.Second); err != nil {
		t.Error(err)
	}
	if err := k.Stop(); err != nil {
		t.Fatal(err)
	}
	if k.Alive() {
		t.Error("alive after Stop")
	}
	for _, p := range kids {
		if _, err := os.Stat(filepath.Join("/proc", itoa(p.PID))); err == nil {
			if q, err := readProcess(p.PID); err == nil && q.PPID == k.PID {
				t.Errorf("child %d outlived Stop", p.PID)
			}
		}
	}
	if err := k.Healthy(); err == nil {
		t.Error("Healthy after Stop, want an error")
	}
}

// TestUASTakesByeBeforeAck: the shared UAS scenario completes a call whose
// BYE overtakes its ACK, as two proxy workers relaying them at once can
// make it (the "unexpected BYE" of a loaded machine).
func TestUASTakesByeBeforeAck(t *testing.T) {
	uas := SIPp{Scenario: "../sipp/uas.xml", Calls: 1, TraceMsg: true, Name: "uas", Timeout: time.Minute}.Start(t)
	uac := SIPp{
		Scenario: "testdata/uac_bye_first.xml", Remote: uas.Addr(), Calls: 1, Name: "uac", Timeout: time.Minute,
		Keys: map[string]string{"caller": "+12155550121", "callee": "+12155550131", "from_params": ";user=phone",
			"hdr1": "X-Case: bye-first", "hdr2": "X-Test: kamtest"},
	}.Run(t)
	if err := uac.Err(); err != nil {
		t.Fatalf("uac: %v", err)
	}
	res := uas.Wait()
	if err := res.Err(); err != nil {
		t.Fatalf("uas: %v", err)
	}
	var order []string
	for _, m := range res.Received() {
		order = append(order, strings.Fields(StartLine(m))[0])
	}
	if strings.Join(order, " ") != "INVITE BYE ACK" {
		t.Errorf("uas received %v, want INVITE BYE ACK", order)
	}
}

// TestStartFailsOnBadConfig: a config Kamailio rejects fails Start with
// the log, it does not hang until the ready timeout.
func TestStartFailsOnBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.cfg")
	if err := os.WriteFile(bad, []byte("#!KAMAILIO\nloadmodule \"no_such_module.so\"\nrequest_route { exit; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The ready timeout is far away: the error must come from the exit,
	// which the "not ready" of a timeout would not be.
	k, err := StartContext(t.Context(), Options{Config: bad, Dir: dir, ReadyTimeout: 10 * time.Minute})
	if err == nil {
		k.Stop()
		t.Fatal("Start succeeded on a config that loads a missing module")
	}
	if strings.Contains(err.Error(), "not ready on") {
		t.Errorf("Start waited for the ready timeout: %v", err)
	}
	if !strings.Contains(err.Error(), "no_such_module") {
		t.Errorf("error does not carry the log: %v", err)
	}
}

func TestSIPpFailureIsReported(t *testing.T) {
	// Nobody listens: the INVITE times out and SIPp reports a failed call.
	port, err := FreeUDPPort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	res := SIPp{
		Scenario: "../sipp/uac.xml", Remote: "127.0.0.1:" + itoa(port), Calls: 1, Timeout: 3 * time.Second,
		Keys: map[string]string{"caller": "1", "callee": "2", "from_params": "", "hdr1": "X-A: 1", "hdr2": "X-B: 2"},
	}.Run(t)
	if res.Err() == nil {
		t.Fatalf("no error for a call nobody answered: exit %d stats %s", res.ExitCode, res.Stats)
	}
	if res.ExitCode == SIPpAllSucceeded {
		t.Errorf("exit code %d", res.ExitCode)
	}
}

func TestParseStats(t *testing.T) {
	header := "StartTime;TotalCallCreated;SuccessfulCall(C);FailedCall(C);Retransmissions(C);CallRate(C);ResponseTime1(C)"
	tests := []struct {
		name, line string
		want       Stats
		wantErr    bool
	}{
		{"counts", "x\ty;10;9;1;4;99.5;00:00:01:250000", Stats{Created: 10, Successful: 9, Failed: 1, Retransmissions: 4, CallRate: 99.5, ResponseTime: 1250 * time.Millisecond}, false},
		{"empty fields", "x;;;;;;", Stats{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStats(header, tc.line)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			got.Raw = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := parseStats("a;b", "1;2"); err == nil {
		t.Error("no error for a file without SuccessfulCall(C)")
	}
}

func TestTraceMessages(t *testing.T) {
	trace := "----------------------------------------------- 2026-01-01 00:00:00.000000\n" +
		"UDP message sent (10 bytes):\n\nINVITE sip:a SIP/2.0\r\nVia: x\r\nContent-Length: 0\r\n\r\n\n" +
		"----------------------------------------------- 2026-01-01 00:00:00.000001\n" +
		"UDP message received [10] bytes :\n\nSIP/2.0 200 OK\r\nIdentity: a.b.c;info=<https://x>\r\nidentity: d\r\n\r\n\n"
	r := Result{Trace: trace}
	sent, recv := r.Sent(), r.Received()
	if len(sent) != 1 || StartLine(sent[0]) != "INVITE sip:a SIP/2.0" {
		t.Fatalf("sent %q", sent)
	}
	if sent[0] != "INVITE sip:a SIP/2.0\r\nVia: x\r\nContent-Length: 0\r\n\r\n" {
		t.Errorf("sent message %q", sent[0])
	}
	if len(recv) != 1 || StartLine(recv[0]) != "SIP/2.0 200 OK" {
		t.Fatalf("received %q", recv)
	}
	if h := Header(recv[0], "IDENTITY"); len(h) != 2 || h[0] != "a.b.c;info=<https://x>" || h[1] != "d" {
		t.Errorf("Identity headers %q", h)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
