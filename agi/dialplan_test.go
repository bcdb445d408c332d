package agi

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/agi/agitest"
	"github.com/stirgate/stirgate/ami"
	"github.com/stirgate/stirgate/ami/amitest"
	"github.com/stirgate/stirgate/outcome"
)

// The dialplan samples in asterisk/ are tested by walking them: a small
// interpreter runs the applications they use (Set, GotoIf, AGI, Dial with a
// b() pre-dial handler, PJSIPHangup, hangup handlers, UserEvent) with
// Asterisk's semantics for exactly those, calling the real FastAGI server
// through the res_agi.c peer. The StirShaken events the hangup handlers
// raise are then fed to the AMI listener through its manager.c peer. An
// application the walker does not know fails the test, so the samples
// cannot drift into untested territory.

type step struct {
	label, app, data string
	line             int
}

type extension struct {
	pattern string
	steps   []step
}

type dialplan struct {
	globals  map[string]string
	contexts map[string][]*extension
	order    []string
}

func loadDialplan(t *testing.T, path string) *dialplan {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := &dialplan{globals: map[string]string{}, contexts: map[string][]*extension{}}
	var ctx string
	var cur *extension
	head := regexp.MustCompile(`^(exten|same)\s*=>\s*(.*)$`)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			ctx = line[1 : len(line)-1]
			d.order = append(d.order, ctx)
			cur = nil
			continue
		case ctx == "globals":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s:%d: globals line %q", path, n, line)
			}
			d.globals[strings.TrimSpace(k)] = strings.TrimSpace(v)
			continue
		}
		m := head.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s:%d: not a dialplan line: %q", path, n, line)
		}
		rest := m[2]
		if m[1] == "exten" {
			pat, r, _ := strings.Cut(rest, ",")
			cur = &extension{pattern: pat}
			d.contexts[ctx] = append(d.contexts[ctx], cur)
			rest = r
		} else if cur == nil {
			t.Fatalf("%s:%d: same => without exten", path, n)
		}
		prio, app, ok := strings.Cut(rest, ",")
		if !ok {
			t.Fatalf("%s:%d: no application: %q", path, n, line)
		}
		s := step{line: n}
		if i := strings.IndexByte(prio, '('); i >= 0 {
			s.label = strings.TrimSuffix(prio[i+1:], ")")
		}
		name, data, ok := strings.Cut(app, "(")
		if !ok || !strings.HasSuffix(data, ")") {
			t.Fatalf("%s:%d: application %q", path, n, app)
		}
		s.app, s.data = name, strings.TrimSuffix(data, ")")
		cur.steps = append(cur.steps, s)
	}
	return d
}

// match is Asterisk's extension pattern matching for the forms used.
func match(pattern, exten string) bool {
	if !strings.HasPrefix(pattern, "_") {
		return pattern == exten
	}
	p := pattern[1:]
	for i := 0; i < len(p); i++ {
		if p[i] == '.' {
			return len(exten) > i
		}
		if i >= len(exten) {
			return false
		}
		c := exten[i]
		switch p[i] {
		case 'X':
			if c < '0' || c > '9' {
				return false
			}
		case 'N':
			if c < '2' || c > '9' {
				return false
			}
		case 'Z':
			if c < '1' || c > '9' {
				return false
			}
		default:
			if p[i] != c {
				return false
			}
		}
	}
	return len(p) == len(exten)
}

func (d *dialplan) find(ctx, exten string) *extension {
	for _, e := range d.contexts[ctx] {
		if match(e.pattern, exten) {
			return e
		}
	}
	return nil
}

// splitArgs splits application data on sep outside parentheses, as
// ast_app_separate_args does.
func splitArgs(s string, sep byte) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case sep:
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

type dialed struct {
	dest    string
	headers map[string]string // PJSIP_HEADER(add,...) of the pre-dial handler
}

// channel is one Asterisk channel as the walker keeps it.
type channel struct {
	t        *testing.T
	d        *dialplan
	agiAddr  string
	vars     map[string]string
	inherit  map[string]bool
	caller   string
	name     string
	exten    string
	uniqueid string
	headers  map[string][]string // the INVITE's SIP headers
	funcs    map[string]string   // values of other dialplan functions, e.g. STIR_SHAKEN(count)
	added    map[string]string
	handlers []string // hangup handler contexts
	rejected string   // PJSIPHangup code
	dials    []dialed
	events   []ami.Message
}

func (c *channel) get(name string) string {
	switch name {
	case "EXTEN":
		return c.exten
	case "UNIQUEID":
		return c.uniqueid
	case "CALLERID(num)":
		return c.caller
	case "CALLERID(name)":
		return c.name
	}
	if strings.HasSuffix(name, ")") {
		v, ok := c.funcs[name]
		if !ok {
			c.t.Fatalf("walker: function %s has no value in this test", name)
		}
		return v
	}
	if v, ok := c.vars[name]; ok {
		return v
	}
	return c.d.globals[name]
}

var (
	varRef  = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*(?:\([a-z0-9_,]+\))?)(?::(\d+):(\d+))?\}`)
	exprRef = regexp.MustCompile(`\$\[([^\]]*)\]`)
)

// substitute expands ${VAR}, ${VAR:off:len} and ${FUNC(arg)}, then $[...].
func (c *channel) substitute(s string) string {
	s = varRef.ReplaceAllStringFunc(s, func(m string) string {
		p := varRef.FindStringSubmatch(m)
		v := c.get(p[1])
		if p[2] != "" {
			off, _ := strconv.Atoi(p[2])
			n, _ := strconv.Atoi(p[3])
			if off > len(v) {
				return ""
			}
			v = v[off:]
			if n < len(v) {
				v = v[:n]
			}
		}
		return v
	})
	if strings.Contains(s, "${") {
		c.t.Fatalf("walker: unsupported expansion in %q", s)
	}
	return exprRef.ReplaceAllStringFunc(s, func(m string) string {
		if evalExpr(c.t, exprRef.FindStringSubmatch(m)[1]) {
			return "1"
		}
		return "0"
	})
}

// evalExpr evaluates the expressions the samples use: operands, quoted
// or bare words, compared with = or !=, joined by &.
func evalExpr(t *testing.T, e string) bool {
	cmp := regexp.MustCompile(`^\s*(?:"([^"]*)"|(\S+))\s*(!=|=)\s*(?:"([^"]*)"|(\S+))\s*$`)
	for _, part := range strings.Split(e, "&") {
		m := cmp.FindStringSubmatch(part)
		if m == nil {
			t.Fatalf("walker: unsupported expression %q", e)
		}
		if (m[1]+m[2] == m[4]+m[5]) != (m[3] == "=") {
			return false
		}
	}
	return true
}

// run executes ctx/exten from its first step until Hangup, PJSIPHangup,
// Return or the end, and reports whether the call was ended.
func (c *channel) run(ctx, exten string) (ended bool) {
	e := c.d.find(ctx, exten)
	if e == nil {
		c.t.Fatalf("walker: no extension %s@%s", exten, ctx)
	}
	saved := c.exten
	c.exten = exten
	defer func() { c.exten = saved }()
	for pc := 0; pc < len(e.steps); pc++ {
		s := e.steps[pc]
		data := c.substitute(s.data)
		switch s.app {
		case "NoOp", "Log":
		case "Set":
			c.set(s, data)
		case "GotoIf":
			cond, labels, _ := strings.Cut(data, "?")
			yes, no, _ := strings.Cut(labels, ":")
			target := no
			if cond == "1" {
				target = yes
			}
			if target == "" {
				continue
			}
			found := false
			for i, st := range e.steps {
				if st.label == target {
					pc, found = i-1, true
				}
			}
			if !found {
				c.t.Fatalf("line %d: no label %q", s.line, target)
			}
		case "AGI":
			c.agi(s, data)
		case "Dial":
			c.dial(s, data)
		case "Hangup":
			return true
		case "PJSIPHangup":
			c.rejected = data
			return true
		case "Return":
			return false
		case "UserEvent":
			args := splitArgs(data, ',')
			m := ami.Message{{Key: "Event", Value: "UserEvent"}, {Key: "UserEvent", Value: args[0]},
				{Key: "Uniqueid", Value: c.uniqueid}, {Key: "Linkedid", Value: c.uniqueid}}
			for _, a := range args[1:] {
				k, v, ok := strings.Cut(a, ": ")
				if !ok {
					c.t.Fatalf("line %d: UserEvent argument %q is not \"Header: value\"", s.line, a)
				}
				m = append(m, ami.Header{Key: k, Value: v})
			}
			c.events = append(c.events, m)
		default:
			c.t.Fatalf("line %d: the walker does not know %s()", s.line, s.app)
		}
	}
	return false
}

func (c *channel) set(s step, data string) {
	name, value, ok := strings.Cut(data, "=")
	if !ok {
		c.t.Fatalf("line %d: Set(%s)", s.line, data)
	}
	switch {
	case name == "CHANNEL(hangup_handler_push)":
		c.handlers = append(c.handlers, strings.Split(value, ",")[0])
	case strings.HasPrefix(name, "PJSIP_HEADER(add,"):
		c.added[strings.TrimSuffix(strings.TrimPrefix(name, "PJSIP_HEADER(add,"), ")")] = value
	case name == "CALLERID(name)":
		c.name = value
	case strings.HasPrefix(name, "__"):
		c.vars[name[2:]], c.inherit[name[2:]] = value, true
	case strings.Contains(name, "("):
		c.t.Fatalf("line %d: the walker does not know %s", s.line, name)
	default:
		c.vars[name] = value
	}
}

func (c *channel) agi(s step, data string) {
	args := splitArgs(data, ',')
	u := strings.TrimPrefix(args[0], "agi://")
	_, script, _ := strings.Cut(u, "/")
	ch := agitest.Channel{
		Script: script, Args: args[1:], CallerID: c.caller, Exten: c.exten, UniqueID: c.uniqueid,
		Vars: c.vars, Headers: c.headers, NoSigHup: c.vars["AGISIGHUP"] == "no",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr, err := ch.Run(ctx, c.agiAddr)
	if err != nil {
		c.vars["AGISTATUS"] = "FAILURE" // res_agi: the dialplan continues
		return
	}
	for k, v := range tr.Set {
		c.vars[k] = v
	}
	c.vars["AGISTATUS"] = "SUCCESS"
}

func (c *channel) dial(s step, data string) {
	args := splitArgs(data, ',')
	child := &channel{t: c.t, d: c.d, vars: map[string]string{}, inherit: map[string]bool{}, added: map[string]string{},
		exten: "s", uniqueid: c.uniqueid + "-out"}
	for k := range c.inherit {
		child.vars[k], child.inherit[k] = c.vars[k], true
	}
	if len(args) > 2 {
		if m := regexp.MustCompile(`b\(([^^)]+)\^([^^)]+)\^(\d+)\)`).FindStringSubmatch(args[2]); m != nil {
			child.run(m[1], m[2])
		}
	}
	c.dials = append(c.dials, dialed{dest: args[0], headers: child.added})
}

// call runs a call through ctx/exten, then its hangup handlers.
func (c *channel) call(ctx string) {
	c.run(ctx, c.exten)
	for i := len(c.handlers) - 1; i >= 0; i-- {
		c.run(c.handlers[i], "s")
	}
}

func newChannel(t *testing.T, d *dialplan, agiAddr, caller, exten, uid string) *channel {
	return &channel{t: t, d: d, agiAddr: agiAddr, vars: map[string]string{}, inherit: map[string]bool{},
		added: map[string]string{}, caller: caller, name: "Alice", exten: exten, uniqueid: uid}
}

// TestDialplanSamples walks asterisk/extensions.conf: an outbound call on
// one PBX is signed and leaves with Identity and Date; the far PBX verifies
// it; failures are rejected (strict) or marked (relaxed); stirgate's own
// failure never rejects. The hangup handlers' UserEvents go through the AMI
// listener and become the right outcomes.
func TestDialplanSamples(t *testing.T) {
	d := loadDialplan(t, "../asterisk/extensions.conf")
	l := newLab(t)
	_, addr := start(t, Options{Service: Core{Signer: l.signer(t, "/sp.pem"), Verifier: l.verifier(t)}})
	_, verifyOnly := start(t, Options{Service: Core{}})
	down := func() string { // an address nobody listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := ln.Addr().String()
		ln.Close()
		return a
	}()

	// PBX A: outbound.
	out := newChannel(t, d, addr, "2155550121", "12155550131", "1768478400.1")
	out.call("outbound")
	if len(out.dials) != 1 || out.dials[0].dest != "PJSIP/12155550131@carrier" {
		t.Fatalf("outbound dials = %+v (vars %v)", out.dials, out.vars)
	}
	sent := out.dials[0].headers
	if sent["Identity"] == "" || sent["Identity"] != out.vars[VarIdentity] || sent["Date"] != out.vars[VarDate] {
		t.Fatalf("INVITE headers = %v, STIR vars %v", sent, out.vars)
	}

	invite := map[string][]string{
		"Identity": {sent["Identity"]}, "Date": {sent["Date"]},
		"From": {e2eFrom}, "To": {e2eTo},
	}
	tampered := map[string][]string{"Identity": {tamperSig(sent["Identity"])}, "Date": {sent["Date"]}, "From": {e2eFrom}, "To": {e2eTo}}

	tests := []struct {
		name     string
		agi      string
		mode     string
		headers  map[string][]string
		reject   string // PJSIPHangup code; "" means the call is dialed
		callerNm string
		verstat  string // X-Verstat sent to the office
		event    bool
	}{
		{"pass, strict", addr, "strict", invite, "", "Alice", "TN-Validation-Passed", true},
		{"bad signature, strict", addr, "strict", tampered, "438", "", "", true},
		{"bad signature, relaxed", addr, "relaxed", tampered, "", "[unverified] Alice", "TN-Validation-Failed", true},
		{"no identity, strict", addr, "strict", map[string][]string{"From": {e2eFrom}, "To": {e2eTo}}, "", "Alice", "No-TN-Validation", true},
		{"stirgate down, strict", down, "strict", tampered, "", "Alice", "", true},
		{"stirgate cannot verify, strict", verifyOnly, "strict", tampered, "", "Alice", "No-TN-Validation", true},
	}
	var events []ami.Message
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newChannel(t, d, tt.agi, "12155550121", "12155550131", fmt.Sprintf("1768478500.%d", i))
			in.headers = tt.headers
			in.vars["STIR_MODE"] = tt.mode
			in.call("from-carrier")
			if in.rejected != tt.reject {
				t.Fatalf("rejected with %q, want %q (vars %v)", in.rejected, tt.reject, in.vars)
			}
			if tt.reject != "" {
				if len(in.dials) != 0 {
					t.Fatalf("rejected and dialed: %+v", in.dials)
				}
			} else {
				if len(in.dials) != 1 || in.dials[0].dest != "PJSIP/12155550131@office" {
					t.Fatalf("dials = %+v", in.dials)
				}
				if got := in.dials[0].headers["X-Verstat"]; got != tt.verstat {
					t.Errorf("X-Verstat = %q, want %q", got, tt.verstat)
				}
				if in.name != tt.callerNm {
					t.Errorf("caller name = %q, want %q", in.name, tt.callerNm)
				}
			}
			if got := len(in.events); got != map[bool]int{true: 1, false: 0}[tt.event] {
				t.Fatalf("%d StirShaken events", got)
			}
			events = append(events, in.events...)
		})
	}
	events = append(events, out.events...)
	// PBX A with stirgate down: the call goes out unsigned, and the hangup
	// handler reports it so that the unsigned share counts it.
	outDown := newChannel(t, d, down, "2155550121", "12155550131", "1768478400.2")
	outDown.call("outbound")
	if len(outDown.dials) != 1 || outDown.dials[0].headers["Identity"] != "" || len(outDown.events) != 1 {
		t.Fatalf("outbound with stirgate down: dials %+v, %d events", outDown.dials, len(outDown.events))
	}
	events = append(events, outDown.events...)
	checkEventsThroughAMI(t, events, map[string]string{
		"1768478400.1": "sign/signed/0",
		"1768478400.2": "sign/unsigned/0",
		"1768478500.4": "verify/error/0",
		"1768478500.0": "verify/pass/0",
		"1768478500.1": "verify/fail/438",
		"1768478500.2": "verify/fail/438",
		"1768478500.3": "verify/none/0",
		"1768478500.5": "verify/none/500",
	})
}

func tamperSig(id string) string {
	h, params, _ := strings.Cut(id, ";")
	i := len(h) - 20
	sub := byte('A')
	if h[i] == 'A' {
		sub = 'B'
	}
	return h[:i] + string(sub) + h[i+1:] + ";" + params
}

// recordThroughAMI emits the events from a manager.c peer to the AMI
// listener and returns the n outcomes it records.
func recordThroughAMI(t *testing.T, events []ami.Message, n int) []outcome.Outcome {
	t.Helper()
	peer, err := amitest.Listen("127.0.0.1:0", amitest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	rec := &memRecorder{}
	lis := ami.New(ami.Options{Address: peer.Addr(), System: "pbx1", Recorder: rec})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lis.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-peer.LoggedIn():
	case <-time.After(20 * time.Second):
		// Generous: under the whole -race suite on two cores a first
		// attempt can time out and the listener then backs off.
		t.Fatal("AMI listener did not log in")
	}
	for _, m := range events {
		if peer.Emit(m) != 1 {
			t.Fatalf("event not taken: %v", m)
		}
	}
	waitFor(t, func() bool { return len(rec.all()) == n })
	return rec.all()
}

// checkEventsThroughAMI emits the events from a manager.c peer to the AMI
// listener and compares the outcomes it records: kind/result/sip code per
// Uniqueid.
func checkEventsThroughAMI(t *testing.T, events []ami.Message, want map[string]string) {
	t.Helper()
	for _, o := range recordThroughAMI(t, events, len(want)) {
		got := fmt.Sprintf("%s/%s/%d", o.Kind, o.Result, o.SIPCode)
		if want[o.UniqueID] != got {
			t.Errorf("AMI outcome %s = %s, want %s (%+v)", o.UniqueID, got, want[o.UniqueID], o)
		}
	}
}

// TestDialplanStructure checks every sample file: targets of GotoIf, b()
// and hangup_handler_push exist, every application is one the samples are
// allowed to use, the AGI calls name real scripts and options, and every
// UserEvent header is one the AMI listener reads.
func TestDialplanStructure(t *testing.T) {
	known := map[string]bool{"NoOp": true, "Log": true, "Set": true, "GotoIf": true, "AGI": true, "Dial": true,
		"Hangup": true, "PJSIPHangup": true, "Return": true, "UserEvent": true}
	amiHeaders := map[string]bool{}
	for _, h := range []string{ami.HdrKind, ami.HdrResult, ami.HdrVerstat, ami.HdrAttest, ami.HdrOrigID, ami.HdrSIPCode,
		ami.HdrError, ami.HdrReason, ami.HdrX5U, ami.HdrSPC, ami.HdrOrig, ami.HdrDest, ami.HdrDirection,
		ami.HdrVerifyResult, ami.HdrAttestation} {
		amiHeaders[h] = true
	}
	for _, file := range []string{"../asterisk/extensions.conf", "../asterisk/extensions-res_stir_shaken.conf"} {
		d := loadDialplan(t, file)
		if len(d.order) == 0 {
			t.Fatalf("%s: no contexts", file)
		}
		for ctx, exts := range d.contexts {
			for _, e := range exts {
				labels := map[string]bool{}
				for _, s := range e.steps {
					if s.label != "" {
						labels[s.label] = true
					}
				}
				for _, s := range e.steps {
					where := fmt.Sprintf("%s:%d [%s]", file, s.line, ctx)
					if !known[s.app] {
						t.Errorf("%s: application %s is not covered by the walker", where, s.app)
					}
					switch s.app {
					case "GotoIf":
						_, l, _ := strings.Cut(s.data, "?")
						for _, lb := range strings.Split(l, ":") {
							if lb != "" && !labels[lb] {
								t.Errorf("%s: no label %q", where, lb)
							}
						}
					case "Dial":
						if m := regexp.MustCompile(`b\(([^^)]+)\^([^^)]+)\^`).FindStringSubmatch(s.data); m != nil && d.find(m[1], m[2]) == nil {
							t.Errorf("%s: pre-dial handler %s,%s missing", where, m[1], m[2])
						}
					case "Set":
						if v, ok := strings.CutPrefix(s.data, "CHANNEL(hangup_handler_push)="); ok {
							parts := strings.Split(v, ",")
							if d.find(parts[0], parts[1]) == nil {
								t.Errorf("%s: hangup handler %s missing", where, v)
							}
						}
					case "AGI":
						args := splitArgs(s.data, ',')
						_, script, _ := strings.Cut(strings.TrimPrefix(args[0], "${STIRGATE}"), "/")
						for _, a := range args[1:] {
							if _, err := parseOptions(Env{"agi_network_script": script, "agi_arg_1": a}); err != nil {
								t.Errorf("%s: AGI argument %q: %v", where, a, err)
							}
						}
						if allowed[strings.SplitN(script, "?", 2)[0]] == nil {
							t.Errorf("%s: AGI script %q", where, script)
						}
					case "UserEvent":
						args := splitArgs(s.data, ',')
						if args[0] != ami.UserEventName {
							t.Errorf("%s: UserEvent %q, want %s", where, args[0], ami.UserEventName)
						}
						for _, a := range args[1:] {
							k, _, _ := strings.Cut(a, ": ")
							if !amiHeaders[k] {
								t.Errorf("%s: UserEvent header %q is not read by the AMI listener", where, k)
							}
						}
					}
				}
			}
		}
	}
}

// TestDialplanNativeVariant walks extensions-res_stir_shaken.conf: the
// verdict of Asterisk's own res_stir_shaken reaches the store through the
// hangup handler's UserEvent and the AMI listener, with source "native".
func TestDialplanNativeVariant(t *testing.T) {
	d := loadDialplan(t, "../asterisk/extensions-res_stir_shaken.conf")
	tests := []struct {
		uid   string
		funcs map[string]string
		want  string
	}{
		{"1768478600.1", map[string]string{"STIR_SHAKEN(count)": "1", "STIR_SHAKEN(0,verify_result)": "Verification passed", "STIR_SHAKEN(0,attestation)": "A"}, "verify/pass//A/native"},
		{"1768478600.2", map[string]string{"STIR_SHAKEN(count)": "1", "STIR_SHAKEN(0,verify_result)": "cert_retrieval_failure", "STIR_SHAKEN(0,attestation)": ""}, "verify/fail/x5u_fetch_failed//native"},
		{"1768478600.3", map[string]string{"STIR_SHAKEN(count)": "0"}, "verify/none/no_identity//native"},
		// What Asterisk 22.10.1 reports, live: an unsigned call still has
		// one result; a stale iat and a caller ID that is not orig.
		{"1768478600.4", map[string]string{"STIR_SHAKEN(count)": "1", "STIR_SHAKEN(0,verify_result)": "missing_identity_hdr", "STIR_SHAKEN(0,attestation)": ""}, "verify/none/no_identity//native"},
		{"1768478600.5", map[string]string{"STIR_SHAKEN(count)": "1", "STIR_SHAKEN(0,verify_result)": "iat_range_error", "STIR_SHAKEN(0,attestation)": "A"}, "verify/fail/stale_iat/A/native"},
		{"1768478600.6", map[string]string{"STIR_SHAKEN(count)": "1", "STIR_SHAKEN(0,verify_result)": "cid_orig_tn_mismatch", "STIR_SHAKEN(0,attestation)": "B"}, "verify/fail/orig_mismatch/B/native"},
	}
	var events []ami.Message
	for _, tt := range tests {
		c := newChannel(t, d, "", "12155550121", "12155550131", tt.uid)
		c.funcs = tt.funcs
		c.call("from-carrier-native")
		if len(c.dials) != 1 || len(c.events) != 1 {
			t.Fatalf("%s: dials %+v, events %d", tt.uid, c.dials, len(c.events))
		}
		events = append(events, c.events...)
	}
	for _, o := range recordThroughAMI(t, events, len(tests)) {
		got := fmt.Sprintf("%s/%s/%s/%s/%s", o.Kind, o.Result, o.ErrorName, o.Attest, o.Source)
		for _, tt := range tests {
			if tt.uid == o.UniqueID && got != tt.want {
				t.Errorf("%s: outcome %s, want %s", o.UniqueID, got, tt.want)
			}
		}
	}
}
