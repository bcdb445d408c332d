package agi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stirgate/stirgate/agi/agitest"
	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/outcome"
)

var fixedNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// fakeService answers with canned results and keeps the requests.
type fakeService struct {
	mu       sync.Mutex
	signReqs []core.SignRequest
	verReqs  []core.VerifyRequest

	signRes   *core.SignResult
	signErr   error
	verRes    *stir.Result
	signDelay time.Duration
}

func (f *fakeService) Sign(ctx context.Context, req core.SignRequest) (*core.SignResult, error) {
	f.mu.Lock()
	f.signReqs = append(f.signReqs, req)
	f.mu.Unlock()
	if f.signDelay > 0 {
		select {
		case <-time.After(f.signDelay):
		case <-ctx.Done():
			return nil, stir.ErrInternal.With("cancelled", ctx.Err())
		}
	}
	if f.signErr != nil {
		return nil, f.signErr
	}
	if f.signRes != nil {
		r := *f.signRes
		return &r, nil
	}
	return &core.SignResult{
		Identity: "eyJh.eyJh.c2ln;info=<https://cert.example/sp.pem>;alg=ES256;ppt=shaken",
		Date:     "Mon, 23 Nov 2026 12:00:00 GMT", Attest: req.Attest, OrigID: "0b8c3c2e-5f0a-4c5e-9a51-1f6a2b0c9d10",
		Orig: req.Orig, Dest: req.Dest, IAT: fixedNow.Unix(), X5U: "https://cert.example/sp.pem",
	}, nil
}

func (f *fakeService) Verify(ctx context.Context, req core.VerifyRequest) *stir.Result {
	f.mu.Lock()
	f.verReqs = append(f.verReqs, req)
	f.mu.Unlock()
	if f.verRes != nil {
		r := *f.verRes
		return &r
	}
	return &stir.Result{
		Result: stir.Pass, Verstat: stir.VerstatPassed, Attest: stir.AttestFull, OrigID: "origid-1",
		Orig: "12155550121", Dest: []string{"12155550131"}, X5U: "https://cert.example/sp.pem", SPC: "1234",
	}
}

// memRecorder is an in-memory outcome.Recorder.
type memRecorder struct {
	mu  sync.Mutex
	out []outcome.Outcome
	err error
}

func (m *memRecorder) Record(_ context.Context, o outcome.Outcome) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.out = append(m.out, o)
	return nil
}

func (m *memRecorder) all() []outcome.Outcome {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]outcome.Outcome(nil), m.out...)
}

// start runs a Server on a loopback listener; it is shut down (and its
// Serve checked) when the test ends.
func start(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	if opts.System == "" {
		opts.System = "pbx1"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(opts)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return srv, l.Addr().String()
}

func play(t *testing.T, addr string, ch agitest.Channel) *agitest.Transcript {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr, err := ch.Run(ctx, addr)
	if err != nil {
		t.Fatalf("peer: %v", err)
	}
	return tr
}

// lastSet returns the variable of the last SET VARIABLE command.
func lastSet(tr *agitest.Transcript) string {
	for i := len(tr.Commands) - 1; i >= 0; i-- {
		if a := agitest.ParseArgs(tr.Commands[i]); len(a) >= 3 && strings.EqualFold(a[0], "SET") {
			return a[2]
		}
	}
	return ""
}

func checkVars(t *testing.T, tr *agitest.Transcript, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got, ok := tr.Set[k]
		if !ok || got != v {
			t.Errorf("%s = %q (set %v), want %q", k, got, ok, v)
		}
	}
}

var signVarNames = []string{VarIdentity, VarDate, VarAttest, VarOrigID, VarError, VarResult}
var verifyVarNames = []string{VarVerstat, VarSIPCode, VarReason, VarError, VarAttest, VarOrigID, VarSPC, VarX5U, VarDivCount, VarDiv, VarRCDNam, VarRCDCrn, VarRCDIcn, VarRCDCallInfo, VarResult}

func TestSignScript(t *testing.T) {
	tests := []struct {
		name    string
		ch      agitest.Channel
		signErr error
		idLen   int // signer returns an Identity of this many bytes
		wantReq *core.SignRequest
		want    map[string]string
	}{
		{
			name:    "orig and dest from the channel",
			ch:      agitest.Channel{Script: "sign", CallerID: "12155550121", Exten: "12155550131", LinkedID: "1700000000.7"},
			wantReq: &core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, CallID: "1700000000.7"},
			want: map[string]string{VarResult: Signed, VarError: "", VarAttest: "", VarDate: "Mon, 23 Nov 2026 12:00:00 GMT",
				VarOrigID:   "0b8c3c2e-5f0a-4c5e-9a51-1f6a2b0c9d10",
				VarIdentity: "eyJh.eyJh.c2ln;info=<https://cert.example/sp.pem>;alg=ES256;ppt=shaken"},
		},
		{
			name: "arguments override the query and the channel",
			ch: agitest.Channel{Script: "sign?attest=C&customer=q", CallerID: "999", Exten: "888",
				Args: []string{"orig=+1 215 555 0121", "dest=12155550131", "dest=12155550132", "attest=B", "customer=acme", "origid=fixed", "source=trunk-a", "callid=abc"}},
			wantReq: &core.SignRequest{Orig: "+1 215 555 0121", Dest: []string{"12155550131", "12155550132"}, Attest: stir.AttestPartial,
				Customer: "acme", OrigID: "fixed", Source: "trunk-a", CallID: "abc"},
			want: map[string]string{VarResult: Signed, VarAttest: "B"},
		},
		{
			name:    "query alone",
			ch:      agitest.Channel{Script: "sign?attest=A", CallerID: "12155550121", Exten: "12155550131", UniqueID: "1.5", LinkedID: "1.5"},
			wantReq: &core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: stir.AttestFull, CallID: "1.5"},
			want:    map[string]string{VarResult: Signed, VarAttest: "A"},
		},
		{
			name: "no caller number is unsigned, and stale values are cleared",
			ch: agitest.Channel{Script: "sign", Exten: "12155550131",
				Vars: map[string]string{VarIdentity: "old", VarResult: "signed", VarAttest: "A"}},
			want: map[string]string{VarResult: Unsigned, VarError: "sign_input_invalid", VarIdentity: "", VarAttest: ""},
		},
		{
			name: "bad attest is unsigned",
			ch:   agitest.Channel{Script: "sign", CallerID: "12155550121", Exten: "1", Args: []string{"attest=D"}},
			want: map[string]string{VarResult: Unsigned, VarError: "sign_input_invalid"},
		},
		{
			name: "unknown option is unsigned",
			ch:   agitest.Channel{Script: "sign", CallerID: "12155550121", Exten: "1", Args: []string{"atest=B"}},
			want: map[string]string{VarResult: Unsigned, VarError: "sign_input_invalid"},
		},
		{
			name: "argument without =",
			ch:   agitest.Channel{Script: "sign", CallerID: "12155550121", Exten: "1", Args: []string{"B"}},
			want: map[string]string{VarResult: Unsigned, VarError: "sign_input_invalid"},
		},
		{
			name:    "policy refusal is unsigned",
			ch:      agitest.Channel{Script: "sign", CallerID: "12155550121", Exten: "12155550131"},
			signErr: stir.ErrSignNotAllowed.Withf("number not owned"),
			want:    map[string]string{VarResult: Unsigned, VarError: "sign_not_allowed", VarIdentity: ""},
		},
		{
			name:    "signer fault is error",
			ch:      agitest.Channel{Script: "sign", CallerID: "12155550121", Exten: "12155550131"},
			signErr: stir.ErrSignKey.Withf("key gone"),
			want:    map[string]string{VarResult: Errored, VarError: "sign_key_invalid"},
		},
		{
			name:    "a foreign error is an internal error",
			ch:      agitest.Channel{Script: "sign", CallerID: "12155550121", Exten: "12155550131"},
			signErr: errors.New("boom"),
			want:    map[string]string{VarResult: Errored, VarError: "internal_error"},
		},
		{
			name:  "an Identity too long for one command is an error, never a split command",
			ch:    agitest.Channel{Script: "sign", CallerID: "12155550121", Exten: "12155550131", CommandBuf: 2048},
			idLen: 3000,
			want:  map[string]string{VarResult: Errored, VarError: "internal_error", VarIdentity: ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &fakeService{signErr: tt.signErr}
			if tt.idLen > 0 {
				svc.signRes = &core.SignResult{Identity: strings.Repeat("x", tt.idLen), Attest: "A"}
			}
			rec := &memRecorder{}
			srv, addr := start(t, Options{Service: svc, Recorder: rec})
			tr := play(t, addr, tt.ch)
			checkVars(t, tr, tt.want)
			for _, n := range signVarNames {
				if _, ok := tr.Set[n]; !ok {
					t.Errorf("%s not set", n)
				}
			}
			if got := lastSet(tr); got != VarResult {
				t.Errorf("last variable set = %s, want %s", got, VarResult)
			}
			for _, c := range tr.Commands {
				if len(c) > MaxCommandLine {
					t.Errorf("command of %d bytes sent", len(c))
				}
			}
			if tt.wantReq != nil {
				if len(svc.signReqs) != 1 {
					t.Fatalf("%d sign calls", len(svc.signReqs))
				}
				if !reflect.DeepEqual(svc.signReqs[0], *tt.wantReq) {
					t.Errorf("request = %+v\nwant      %+v", svc.signReqs[0], *tt.wantReq)
				}
			}
			waitFor(t, func() bool { return srv.Stats().Recorded == 1 })
			o := rec.all()[0]
			if o.Kind != "sign" || o.Direction != "outbound" || o.Source != outcome.SourceAGI || o.System != "pbx1" ||
				o.Result != tt.want[VarResult] || !o.Time.Equal(fixedNow) || o.UniqueID == "" || o.LinkedID == "" {
				t.Errorf("outcome = %+v", o)
			}
			if tt.want[VarError] != "" && o.ErrorName != tt.want[VarError] {
				t.Errorf("outcome error = %q, want %q", o.ErrorName, tt.want[VarError])
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // a lost event, not a slow machine
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var sipHeaders = map[string][]string{
	"Identity":            {"id1;info=<https://a.example/a.pem>;alg=ES256;ppt=shaken", "id2;info=<https://b.example/b.pem>"},
	"y":                   {"id3;info=<https://c.example/c.pem>"},
	"From":                {`"Alice" <sip:+12155550121@pbx.example>;tag=abc`},
	"P-Asserted-Identity": {"<sip:+12155550121@pbx.example;user=phone>"},
	"To":                  {"<sip:+12155550131@pbx.example>"},
	"Date":                {"Mon, 23 Nov 2026 12:00:00 GMT"},
}

func TestVerifyScript(t *testing.T) {
	fail438 := (&stir.Result{}).Failed(stir.ErrSignatureInvalid.Withf("bad sig"))
	none := (&stir.Result{}).Failed(stir.ErrNoIdentity)
	many := map[string][]string{"Identity": {"1", "2", "3", "4", "5", "6", "7", "8"}}
	long := map[string][]string{"Identity": {strings.Repeat("x", 5000)}}
	tests := []struct {
		name    string
		opts    Options
		ch      agitest.Channel
		res     *stir.Result
		wantReq *core.VerifyRequest // nil: Verify must not be called
		want    map[string]string
	}{
		{
			name: "pass, every header read",
			ch:   agitest.Channel{Script: "verify", Headers: sipHeaders},
			wantReq: &core.VerifyRequest{
				Identity: []string{sipHeaders["Identity"][0], sipHeaders["Identity"][1], sipHeaders["y"][0]},
				From:     sipHeaders["From"][0], PAI: sipHeaders["P-Asserted-Identity"][0], To: sipHeaders["To"][0], Date: sipHeaders["Date"][0],
			},
			want: map[string]string{VarResult: "pass", VarVerstat: "TN-Validation-Passed", VarSIPCode: "", VarReason: "", VarError: "",
				VarAttest: "A", VarOrigID: "origid-1", VarSPC: "1234", VarX5U: "https://cert.example/sp.pem"},
		},
		{
			name:    "failure keeps the reason phrase whole",
			ch:      agitest.Channel{Script: "verify", Headers: sipHeaders, Vars: map[string]string{VarSPC: "stale"}},
			res:     fail438,
			wantReq: &core.VerifyRequest{Identity: []string{sipHeaders["Identity"][0], sipHeaders["Identity"][1], sipHeaders["y"][0]}, From: sipHeaders["From"][0], PAI: sipHeaders["P-Asserted-Identity"][0], To: sipHeaders["To"][0], Date: sipHeaders["Date"][0]},
			want: map[string]string{VarResult: "fail", VarVerstat: "TN-Validation-Failed", VarSIPCode: "438",
				VarReason: "Invalid Identity Header", VarError: "signature_invalid", VarSPC: ""},
		},
		{
			name:    "no identity",
			ch:      agitest.Channel{Script: "verify"},
			res:     none,
			wantReq: &core.VerifyRequest{},
			want:    map[string]string{VarResult: "none", VarVerstat: "No-TN-Validation", VarSIPCode: "428", VarError: "no_identity"},
		},
		{
			name:    "require=yes argument",
			ch:      agitest.Channel{Script: "verify", Args: []string{"require=yes"}},
			res:     none,
			wantReq: &core.VerifyRequest{RequireIdentity: true},
			want:    map[string]string{VarResult: "none"},
		},
		{
			name:    "require from options, overridden per call",
			opts:    Options{RequireIdentity: true},
			ch:      agitest.Channel{Script: "verify?require=no"},
			res:     none,
			wantReq: &core.VerifyRequest{},
			want:    map[string]string{VarResult: "none"},
		},
		{
			name:    "require from options",
			opts:    Options{RequireIdentity: true},
			ch:      agitest.Channel{Script: "verify"},
			res:     none,
			wantReq: &core.VerifyRequest{RequireIdentity: true},
			want:    map[string]string{VarResult: "none"},
		},
		{
			name: "bad option",
			ch:   agitest.Channel{Script: "verify", Args: []string{"require=maybe"}},
			want: map[string]string{VarResult: "none", VarError: "internal_error", VarSIPCode: "500"},
		},
		{
			name:    "one more header than the limit is read",
			opts:    Options{MaxIdentityHeaders: 3},
			ch:      agitest.Channel{Script: "verify", Headers: many},
			wantReq: &core.VerifyRequest{Identity: []string{"1", "2", "3", "4"}},
			want:    map[string]string{VarResult: "pass"},
		},
		{
			name: "a header cut by the 4096-byte buffer is not verified",
			ch:   agitest.Channel{Script: "verify", Headers: long},
			want: map[string]string{VarResult: "fail", VarError: "identity_too_large", VarSIPCode: "438"},
		},
		{
			name:    "newer releases return it whole",
			ch:      agitest.Channel{Script: "verify", Headers: long, FullVariableUnbounded: true},
			wantReq: &core.VerifyRequest{Identity: long["Identity"]},
			want:    map[string]string{VarResult: "pass"},
		},
		{
			name: "hangup during the session: dead-channel commands still run",
			ch:   agitest.Channel{Script: "verify", Headers: sipHeaders, HangupAt: 2, HangupHow: agitest.HangupBeforeReply},
			wantReq: &core.VerifyRequest{Identity: []string{sipHeaders["Identity"][0], sipHeaders["Identity"][1], sipHeaders["y"][0]},
				From: sipHeaders["From"][0], PAI: sipHeaders["P-Asserted-Identity"][0], To: sipHeaders["To"][0], Date: sipHeaders["Date"][0]},
			want: map[string]string{VarResult: "pass"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &fakeService{verRes: tt.res}
			rec := &memRecorder{}
			tt.opts.Service, tt.opts.Recorder = svc, rec
			srv, addr := start(t, tt.opts)
			tr := play(t, addr, tt.ch)
			checkVars(t, tr, tt.want)
			for _, n := range verifyVarNames {
				if _, ok := tr.Set[n]; !ok {
					t.Errorf("%s not set", n)
				}
			}
			if got := lastSet(tr); got != VarResult {
				t.Errorf("last variable set = %s, want %s", got, VarResult)
			}
			for _, c := range tr.Commands {
				if strings.Contains(c, "PJSIP_HEADER") && !strings.HasPrefix(c, "GET FULL VARIABLE ") {
					t.Errorf("header read without GET FULL VARIABLE: %q", c)
				}
			}
			if tt.wantReq == nil && len(svc.verReqs) != 0 {
				t.Errorf("Verify called: %+v", svc.verReqs)
			}
			if tt.wantReq != nil {
				if len(svc.verReqs) != 1 {
					t.Fatalf("%d verify calls", len(svc.verReqs))
				}
				if !reflect.DeepEqual(svc.verReqs[0], *tt.wantReq) {
					t.Errorf("request = %+v\nwant      %+v", svc.verReqs[0], *tt.wantReq)
				}
			}
			waitFor(t, func() bool { return srv.Stats().Recorded == 1 })
			o := rec.all()[0]
			if o.Kind != "verify" || o.Direction != "inbound" || o.Source != outcome.SourceAGI || o.Result != tt.want[VarResult] ||
				o.UniqueID != "1700000000.1" || o.LinkedID != "1700000000.1" {
				t.Errorf("outcome = %+v", o)
			}
			if e := tt.want[VarError]; e != "" && o.ErrorName != e {
				t.Errorf("outcome error = %q, want %q", o.ErrorName, e)
			}
		})
	}
}

// TestVerifyPeerCloses: the channel goes away in the middle of reading the
// headers. Nothing was judged; the record says so.
func TestVerifyPeerCloses(t *testing.T) {
	svc := &fakeService{}
	rec := &memRecorder{}
	srv, addr := start(t, Options{Service: svc, Recorder: rec})
	tr := play(t, addr, agitest.Channel{Script: "verify", Headers: sipHeaders, HangupAt: 3, HangupHow: agitest.HangupClose})
	if len(tr.Set) != 0 || len(svc.verReqs) != 0 {
		t.Fatalf("set %v, verify calls %d", tr.Set, len(svc.verReqs))
	}
	waitFor(t, func() bool { return srv.Stats().Recorded == 1 && srv.Stats().Failed == 1 })
	if o := rec.all()[0]; o.Result != Errored || o.ErrorName != "internal_error" || o.Kind != "verify" {
		t.Fatalf("outcome = %+v", o)
	}
}

func TestUnknownScript(t *testing.T) {
	svc := &fakeService{}
	rec := &memRecorder{}
	srv, addr := start(t, Options{Service: svc, Recorder: rec})
	tr := play(t, addr, agitest.Channel{Script: "sing"})
	if len(tr.Set) != 0 || !tr.Closed || len(tr.Commands) != 1 || !strings.HasPrefix(tr.Commands[0], "VERBOSE ") {
		t.Fatalf("transcript = %+v", tr)
	}
	waitFor(t, func() bool { return srv.Stats().Failed == 1 })
	if len(rec.all()) != 0 {
		t.Fatal("outcome recorded for an unknown script")
	}
}

func TestRecorderFailureDoesNotTouchTheCall(t *testing.T) {
	rec := &memRecorder{err: errors.New("disk full")}
	srv, addr := start(t, Options{Service: &fakeService{}, Recorder: rec})
	tr := play(t, addr, agitest.Channel{Script: "verify", Headers: sipHeaders})
	checkVars(t, tr, map[string]string{VarResult: "pass"})
	waitFor(t, func() bool { return srv.Stats().RecordErr == 1 })
}

func TestSetServiceReload(t *testing.T) {
	srv, addr := start(t, Options{Service: &fakeService{}})
	tr := play(t, addr, agitest.Channel{Script: "verify"})
	checkVars(t, tr, map[string]string{VarResult: "pass"})
	srv.SetService(&fakeService{verRes: (&stir.Result{}).Failed(stir.ErrNoIdentity)})
	tr = play(t, addr, agitest.Channel{Script: "verify"})
	checkVars(t, tr, map[string]string{VarResult: "none"})
}

// TestSilentClientDoesNotBlock: the accept loop never reads, so a client
// that connects and says nothing delays no one: another session completes
// while the silent one is still open (its timeout is far away), which a
// blocked accept loop could never let happen. Ordered, not timed.
func TestSilentClientDoesNotBlock(t *testing.T) {
	srv, addr := start(t, Options{Service: &fakeService{}, SessionTimeout: time.Hour})
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tr := play(t, addr, agitest.Channel{Script: "verify"})
	checkVars(t, tr, map[string]string{VarResult: "pass"})
	// The played session winds down on its own; the silent one stays.
	waitFor(t, func() bool { return srv.Stats().Active == 1 && srv.Stats().Accepted == 2 })
}

func TestSessionTimeout(t *testing.T) {
	tests := []struct {
		name string
		ch   agitest.Channel
	}{
		{"silent before the environment", agitest.Channel{Silent: true}},
		{"silent after the environment", agitest.Channel{Script: "verify", SilentAfterEnv: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, addr := start(t, Options{Service: &fakeService{}, SessionTimeout: 150 * time.Millisecond})
			begin := time.Now()
			tr := play(t, addr, tt.ch)
			d := time.Since(begin)
			// Only the lower bound is judged: a timer never fires early,
			// but a loaded machine can fire it late.
			if !tr.Closed || d < 150*time.Millisecond {
				t.Fatalf("closed=%v after %v", tr.Closed, d)
			}
			waitFor(t, func() bool { return srv.Stats().Failed == 1 && srv.Stats().Active == 0 })
		})
	}
}

func TestMaxSessions(t *testing.T) {
	// The held sessions must outlive the third attempt however slow the
	// machine: a long session timeout, and the test closes them itself.
	srv, addr := start(t, Options{Service: &fakeService{}, MaxSessions: 2, MaxSessionsPerSource: 2, SessionTimeout: time.Minute})
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	waitFor(t, func() bool { return srv.Stats().Active == 2 })
	// The third is closed at once: the dialplan continues without waiting.
	// The peer sees EOF or, when the close races its environment write, a
	// reset; either way Asterisk's AGI() returns and the call goes on. It
	// is refused, not queued: the held sessions are still open when it
	// ends (a generous bound guards against a hang only).
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	tr, err := agitest.Channel{Script: "verify"}.Run(ctx, addr)
	if tr == nil || len(tr.Set) != 0 || len(tr.Commands) != 0 || (err == nil && !tr.Closed) || srv.Stats().Active != 2 {
		t.Fatalf("over the limit: %+v, %v, %+v", tr, err, srv.Stats())
	}
	if s := srv.Stats(); s.Rejected != 1 {
		t.Fatalf("stats = %+v", s)
	}
	for _, c := range held {
		c.Close()
	}
	waitFor(t, func() bool { return srv.Stats().Active == 0 })
	tr = play(t, addr, agitest.Channel{Script: "verify"})
	checkVars(t, tr, map[string]string{VarResult: "pass"})
}

// TestShutdownDrains: Shutdown waits for a running session, which
// completes normally; a later connection is refused.
func TestShutdownDrains(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &fakeService{signDelay: 200 * time.Millisecond}
	srv := NewServer(Options{Service: svc})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	trc := make(chan *agitest.Transcript, 1)
	go func() {
		tr, _ := agitest.Channel{Script: "sign", CallerID: "12155550121", Exten: "12155550131"}.Run(context.Background(), l.Addr().String())
		trc <- tr
	}()
	waitFor(t, func() bool { svc.mu.Lock(); defer svc.mu.Unlock(); return len(svc.signReqs) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	tr := <-trc
	checkVars(t, tr, map[string]string{VarResult: Signed})
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Fatal("listener still accepting after Shutdown")
	}
	if err := srv.Serve(context.Background(), l); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

// TestShutdownGraceExpires: a session that outlives the grace is aborted
// and Shutdown reports the context's error only after its goroutine ended.
func TestShutdownGraceExpires(t *testing.T) {
	base := runtime.NumGoroutine()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(Options{Service: &fakeService{}, SessionTimeout: time.Minute})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, func() bool { return srv.Stats().Active == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	if s := srv.Stats(); s.Active != 0 {
		t.Fatalf("after Shutdown: %+v", s)
	}
	<-served
	c.Close()
	waitGoroutines(t, base)
}

// TestServeContext: ending Serve's context aborts its sessions too.
func TestServeContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(Options{Service: &fakeService{}, SessionTimeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, func() bool { return srv.Stats().Active == 1 })
	cancel()
	select {
	case err := <-served:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return")
	}
	if s := srv.Stats(); s.Active != 0 {
		t.Fatalf("stats = %+v", s)
	}
}

func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d, baseline %d\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConcurrentSessions: 500 sessions at once, a few silent and a few
// hanging up mid-command; all the others complete with their own
// variables while the silent ones are still connected, and nothing leaks.
// (The server's own deadline for silent peers is TestSessionTimeout; here
// the silent peers leave once everyone else is done, so that the test does
// not depend on how slow a loaded machine is.)
func TestConcurrentSessions(t *testing.T) {
	const total, silent, hangup = 500, 10, 10
	base := runtime.NumGoroutine()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &memRecorder{}
	srv := NewServer(Options{Service: &fakeService{}, Recorder: rec, SessionTimeout: 30 * time.Second})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	addr := l.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	silentCtx, releaseSilent := context.WithCancel(ctx)
	defer releaseSilent()
	var normal, others sync.WaitGroup
	var ok, bad atomic.Int64
	var firstErr atomic.Value
	var slowest atomic.Int64
	begin := time.Now()
	for i := 0; i < total; i++ {
		ch := agitest.Channel{Script: "verify", UniqueID: fmt.Sprintf("1700000000.%d", i), Headers: sipHeaders}
		kind, runCtx, wg := "normal", ctx, &normal
		switch {
		case i%50 == 7 && i/50 < silent:
			ch, kind, runCtx, wg = agitest.Channel{Silent: true}, "silent", silentCtx, &others
		case i%50 == 23 && i/50 < hangup:
			ch.HangupAt, ch.HangupHow, kind, wg = 2, agitest.HangupClose, "hangup", &others
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			tr, err := ch.Run(runCtx, addr)
			if kind != "normal" {
				return
			}
			for d := int64(time.Since(t0)); ; {
				cur := slowest.Load()
				if d <= cur || slowest.CompareAndSwap(cur, d) {
					break
				}
			}
			if err != nil || tr.Set[VarResult] != "pass" || tr.Set[VarSPC] != "1234" {
				bad.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: err=%v transcript=%v", ch.UniqueID, err, tr))
				return
			}
			ok.Add(1)
		}()
	}
	normal.Wait()
	// Every normal session finished while the silent ones still held
	// their connections.
	if got := srv.Stats().Active; got < silent {
		t.Errorf("only %d sessions active once the normal ones ended; the silent ones were dropped early", got)
	}
	releaseSilent()
	others.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d sessions failed; first: %v", bad.Load(), firstErr.Load())
	}
	if want := int64(total - silent - hangup); ok.Load() != want {
		t.Fatalf("%d sessions completed, want %d", ok.Load(), want)
	}
	t.Logf("%d sessions in %v; slowest normal session %v", total, time.Since(begin), time.Duration(slowest.Load()))
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	<-served
	s := srv.Stats()
	if s.Active != 0 || s.Accepted != total || s.Failed != silent+hangup || s.Recorded != total-silent {
		t.Errorf("stats = %+v", s)
	}
	waitGoroutines(t, base)
}

// TestCoreHalves: a node that only verifies answers sign sessions with an
// internal error (and the reverse), never silence.
func TestCoreHalves(t *testing.T) {
	_, addr := start(t, Options{Service: Core{}})
	tr := play(t, addr, agitest.Channel{Script: "sign", CallerID: "12155550121", Exten: "12155550131"})
	checkVars(t, tr, map[string]string{VarResult: Errored, VarError: "internal_error"})
	tr = play(t, addr, agitest.Channel{Script: "verify"})
	checkVars(t, tr, map[string]string{VarResult: "none", VarError: "internal_error", VarSIPCode: "500"})
}

// observed collects what Options.Observe and Options.Dropped are told.
type observed struct {
	mu      sync.Mutex
	results []string // op/outcome/errName
	drops   []string
}

func (o *observed) opts(opts Options) Options {
	opts.Observe = func(op string, d time.Duration, outcome, errName string) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if d <= 0 {
			outcome += "(no duration)"
		}
		o.results = append(o.results, op+"/"+outcome+"/"+errName)
	}
	opts.Dropped = func(reason string) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.drops = append(o.drops, reason)
	}
	return opts
}

func (o *observed) get() (results, drops []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.results...), append([]string(nil), o.drops...)
}

// TestObserve: every session that reached a result is observed once with
// its STIR_RESULT and error name (these become the agi series of
// /metrics); sessions that never did are counted as dropped, by reason.
func TestObserve(t *testing.T) {
	var obs observed
	svc := &fakeService{verRes: (&stir.Result{}).Failed(stir.ErrSignatureInvalid.Withf("bad sig"))}
	srv, addr := start(t, obs.opts(Options{Service: svc, MaxSessions: 1, SessionTimeout: 2 * time.Second}))

	for _, ch := range []agitest.Channel{
		{Script: "sign", CallerID: "2155550121", Exten: "12155550131"},
		{Script: "sign", CallerID: "unknown", Exten: "12155550131"},
		{Script: "verify", Headers: sipHeaders},
		{Script: "verify", Headers: sipHeaders, HangupAt: 3, HangupHow: agitest.HangupClose},
		{Script: "sing"},
	} {
		play(t, addr, ch)
		// One at a time: MaxSessions is 1 for the end of the test.
		waitFor(t, func() bool { return srv.Stats().Active == 0 })
	}

	// One held session fills MaxSessions: the next connection is dropped.
	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return srv.Stats().Active == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = agitest.Channel{Script: "verify"}.Run(ctx, addr)
	held.Close()
	waitFor(t, func() bool { _, d := obs.get(); return srv.Stats().Active == 0 && len(d) == 3 })

	results, drops := obs.get()
	wantResults := []string{
		"sign/signed/", "sign/unsigned/sign_input_invalid",
		"verify/fail/signature_invalid", "verify/error/internal_error",
	}
	if strings.Join(results, " ") != strings.Join(wantResults, " ") {
		t.Errorf("observed %q\nwant     %q", results, wantResults)
	}
	wantDrops := []string{"unknown_script", "max_sessions", "no_environment"}
	if strings.Join(drops, " ") != strings.Join(wantDrops, " ") {
		t.Errorf("dropped %q, want %q", drops, wantDrops)
	}
}
