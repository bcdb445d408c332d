package agi

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/agi/agitest"
)

// client is the FastAGI server-side API the protocol scenarios exercise.
// Session implements it (proto_test.go); so does an adapter over the
// CyCoreSystems/agi library (library_test.go), so that the same scenarios
// decide whether the library can be used.
type client interface {
	// get is GET VARIABLE: set tells "200 result=0" from "200 result=1 ()".
	get(ctx context.Context, name string) (value string, set bool, err error)
	getFull(ctx context.Context, expr string) (string, error)
	set(ctx context.Context, name, value string) error
	// raw sends a command line and returns the reply code.
	raw(ctx context.Context, line string) (code int, err error)
	hungUp() bool
	close()
}

// op is one step of a scenario with what it must return.
type op struct {
	kind  string // get, getfull, set, raw
	arg   string
	value string // get/getfull: expected value; set: the value to set
	unset bool   // get: expect "not set"
	code  int    // raw: expected reply code
	err   bool   // expect an error (the session ended)
}

type scenario struct {
	name string
	why  string // the res_agi.c behaviour it reproduces
	ch   agitest.Channel
	ops  []op
	// wantVars are channel variables the peer must hold at the end.
	wantVars map[string]string
	// wantHangup is whether the client must have seen the inline HANGUP.
	wantHangup bool
}

var baseVars = map[string]string{"A": "a", "B": "b", "C": "c", "EMPTY": "", "PAREN": "x (y) z)"}

func scenarios() []scenario {
	return []scenario{
		{
			name: "unset_vs_empty",
			why:  "handle_getvariable: 200 result=0 when unset, 200 result=1 () when empty",
			ch:   agitest.Channel{Vars: baseVars},
			ops: []op{
				{kind: "get", arg: "EMPTY", value: ""},
				{kind: "get", arg: "NOPE", unset: true},
				{kind: "get", arg: "A", value: "a"},
			},
		},
		{
			name: "value_with_parentheses",
			why:  "handle_getvariable prints 200 result=1 (%s): the value runs to the last ')'",
			ch:   agitest.Channel{Vars: baseVars},
			ops:  []op{{kind: "get", arg: "PAREN", value: "x (y) z)"}},
		},
		{
			name: "set_quotes_and_escapes",
			why:  "parse_args splits on unquoted spaces; handle_setvariable keeps argv[3] only",
			ch:   agitest.Channel{Vars: baseVars},
			ops: []op{
				{kind: "set", arg: "X", value: `Invalid Identity Header`},
				{kind: "set", arg: "Y", value: `a "quoted" \ back\slash	tab`},
				{kind: "set", arg: "Z", value: ""},
				{kind: "get", arg: "A", value: "a"},
			},
			wantVars: map[string]string{"X": "Invalid Identity Header", "Y": `a "quoted" \ back\slash	tab`, "Z": ""},
		},
		{
			name: "510_then_next_command",
			why:  "agi_handle_command: 510 Invalid or unknown command",
			ch:   agitest.Channel{Vars: baseVars},
			ops:  []op{{kind: "raw", arg: "FROB NICATE", code: 510}, {kind: "get", arg: "A", value: "a"}},
		},
		{
			name: "511_on_dead_channel",
			why:  "agi_handle_command: a command without dead=1 on a hung-up channel gets 511",
			ch:   agitest.Channel{Vars: baseVars, HangupAt: 1, HangupHow: agitest.HangupAfterReply, NoSigHup: true},
			ops: []op{
				{kind: "get", arg: "A", value: "a"},
				{kind: "raw", arg: "ANSWER", code: 511},
				{kind: "get", arg: "B", value: "b"},
			},
		},
		{
			name: "520_multiline_usage",
			why:  "agi_handle_command: 520-..., the usage text, 520 End of proper usage.",
			ch:   agitest.Channel{Vars: baseVars},
			ops: []op{
				{kind: "raw", arg: "GET VARIABLE", code: 520},
				{kind: "get", arg: "A", value: "a"},
				{kind: "raw", arg: "GET FULL VARIABLE", code: 520},
				{kind: "get", arg: "B", value: "b"},
			},
		},
		{
			name: "hangup_before_reply",
			why:  "run_agi sends HANGUP\\n when it sees the hangup, before executing the pending command",
			ch:   agitest.Channel{Vars: baseVars, HangupAt: 1, HangupHow: agitest.HangupBeforeReply},
			ops:  []op{{kind: "get", arg: "A", value: "a"}, {kind: "get", arg: "B", value: "b"}, {kind: "get", arg: "C", value: "c"}},
			// GET/SET VARIABLE run on dead channels (dead=1).
			wantHangup: true,
		},
		{
			name:       "hangup_after_reply",
			why:        "run_agi: the reply, then HANGUP\\n in a later write",
			ch:         agitest.Channel{Vars: baseVars, HangupAt: 1, HangupHow: agitest.HangupAfterReply},
			ops:        []op{{kind: "get", arg: "A", value: "a"}, {kind: "get", arg: "B", value: "b"}},
			wantHangup: true,
		},
		{
			name:       "hangup_same_segment",
			why:        "reply and HANGUP\\n in one TCP segment",
			ch:         agitest.Channel{Vars: baseVars, HangupAt: 1, HangupHow: agitest.HangupSameSegment},
			ops:        []op{{kind: "get", arg: "A", value: "a"}, {kind: "get", arg: "B", value: "b"}},
			wantHangup: true,
		},
		{
			name: "peer_closes_mid_session",
			why:  "AGIEXITONHANGUP or a destroyed channel closes the socket with a command pending",
			ch:   agitest.Channel{Vars: baseVars, HangupAt: 2, HangupHow: agitest.HangupClose},
			ops: []op{
				{kind: "get", arg: "A", value: "a"},
				{kind: "get", arg: "B", err: true},
				{kind: "get", arg: "C", err: true},
			},
		},
		{
			name: "long_header_via_get_full_variable",
			why:  "handle_getvariablefull expands into tmp[4096]; a 2 KB Identity comes back whole",
			ch: agitest.Channel{Headers: map[string][]string{
				"Identity": {strings.Repeat("h", 2000) + ";info=<https://cert.example/a.pem>;alg=ES256;ppt=shaken"},
			}},
			ops: []op{
				{kind: "getfull", arg: "${PJSIP_HEADER(read,Identity,1)}", value: strings.Repeat("h", 2000) + ";info=<https://cert.example/a.pem>;alg=ES256;ppt=shaken"},
				{kind: "getfull", arg: "${PJSIP_HEADER(read,Identity,2)}", value: ""},
			},
		},
	}
}

// runScenario plays sc against the client that dial builds on the server
// side of a loopback connection, and returns what went wrong.
func runScenario(t *testing.T, sc scenario, mk func(net.Conn) (client, error)) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type peerRes struct {
		tr  *agitest.Transcript
		err error
	}
	pc := make(chan peerRes, 1)
	go func() {
		tr, err := sc.ch.Run(ctx, l.Addr().String())
		pc <- peerRes{tr, err}
	}()
	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	var problems []string
	c, err := mk(conn)
	if err != nil {
		conn.Close()
		return []string{"environment: " + err.Error()}
	}
	for i, o := range sc.ops {
		switch o.kind {
		case "get":
			v, set, err := c.get(ctx, o.arg)
			switch {
			case o.err && err == nil:
				problems = append(problems, fmt.Sprintf("op %d get %s: no error, got %q", i, o.arg, v))
			case !o.err && err != nil:
				problems = append(problems, fmt.Sprintf("op %d get %s: %v", i, o.arg, err))
			case !o.err && (v != o.value || set == o.unset):
				problems = append(problems, fmt.Sprintf("op %d get %s = (%q, set=%v), want (%q, set=%v)", i, o.arg, v, set, o.value, !o.unset))
			}
		case "getfull":
			v, err := c.getFull(ctx, o.arg)
			if err != nil || v != o.value {
				problems = append(problems, fmt.Sprintf("op %d get full %s = (%.40q..., %v), want %.40q...", i, o.arg, v, err, o.value))
			}
		case "set":
			if err := c.set(ctx, o.arg, o.value); err != nil {
				problems = append(problems, fmt.Sprintf("op %d set %s: %v", i, o.arg, err))
			}
		case "raw":
			code, err := c.raw(ctx, o.arg)
			if code != o.code {
				problems = append(problems, fmt.Sprintf("op %d %q: code %d (err %v), want %d", i, o.arg, code, err, o.code))
			}
		}
	}
	if c.hungUp() != sc.wantHangup {
		problems = append(problems, fmt.Sprintf("hung up = %v, want %v", c.hungUp(), sc.wantHangup))
	}
	c.close()
	pr := <-pc
	if pr.err != nil {
		problems = append(problems, "peer: "+pr.err.Error())
	}
	for k, want := range sc.wantVars {
		if pr.tr == nil {
			break
		}
		if got, ok := pr.tr.Vars[k]; !ok || got != want {
			problems = append(problems, fmt.Sprintf("channel variable %s = %q (set %v), want %q", k, got, ok, want))
		}
	}
	return problems
}
