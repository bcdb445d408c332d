package kamailio_test

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stirgate/stirgate/core/stir"
)

// TestFFIDecode: the LuaJIT binding reads div and rcd out of a result's
// JSON with its own small decoder (the C module uses the native module's
// reader, fuzzed in module/resultjson). Fed what libstirgate's encoder
// writes for awkward claims — HTML-escaped <>&, quotes, backslashes,
// control characters, U+2028, non-BMP runes, invalid UTF-8 — it must give
// back the claim as the C module would: the string Go encoded, control
// characters dropped. Malformed JSON must give nil, never raise.
func TestFFIDecode(t *testing.T) {
	values := []string{
		"ACME Corp", `ACME "Corp" <Sales> & Co`, `back\slash/slash`, "tab\tnew\nline\x01\x7f",
		"line\u2028sep", "caf\u00e9 \U0001F600", "bad \xff utf8", "", strings.Repeat("x", 3000),
	}
	var lines []string
	var want []string
	for _, v := range values {
		b, err := json.Marshal(&stir.Result{Result: stir.Pass, Div: []stir.Div{{TN: "12155550131"}, {TN: "12155550141"}},
			RCD: &stir.RCD{Nam: v, Crn: v, Jcd: json.RawMessage(`["vcard",[["fn",{},"text","x"]]]`), Integrity: true}})
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
		// What Go decodes, control characters dropped; an empty claim is
		// left out.
		var back stir.Result
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		n := strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, back.RCD.Nam)
		want = append(want, "div=12155550131,12155550141 nam="+hex.EncodeToString([]byte(n)))
	}
	for _, bad := range []string{`{`, `{"div":[{"tn":"1"}],}`, `{"rcd":{"nam":"\x"}}`, `{"rcd":{"nam":"\ud800"}}`,
		strings.Repeat("[", 100) + strings.Repeat("]", 100), `nul`, `{"rcd":{"nam":"unterminated}}`} {
		lines = append(lines, bad)
		want = append(want, map[bool]string{true: "div=nil nam=" + hex.EncodeToString([]byte("\uFFFD")), false: "nil"}[bad == `{"rcd":{"nam":"\ud800"}}`])
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "results.jsonl")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ffiDir, err := filepath.Abs("ffi")
	if err != nil {
		t.Fatal(err)
	}
	script := `
local stirgate = require "stirgate"
for line in io.lines(arg[1]) do
	local ok, t = pcall(stirgate._extensions, line)
	if not ok then
		print("raised " .. tostring(t))
	elseif t == nil then
		print("nil")
	else
		local nam = t.rcd and t.rcd.nam or ""
		print("div=" .. (t.div and table.concat(t.div, ",") or "nil") .. " nam=" .. (string.gsub(nam, ".", function(c) return string.format("%02x", string.byte(c)) end)))
	end
end
`
	scriptPath := filepath.Join(dir, "decode.lua")
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("luajit", scriptPath, in)
	cmd.Env = append(os.Environ(), "LUA_PATH="+filepath.Join(ffiDir, "?.lua")+";;")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("luajit: %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d lines out, want %d:\n%s", len(got), len(want), out)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("input %.80q:\n got %s\nwant %s", lines[i], got[i], want[i])
		}
	}
}
