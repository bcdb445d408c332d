package kamailio_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/internal/memcheck"
)

// luajitPrelude gives the LuaJIT run the fork helpers host.c gives PUC Lua.
const luajitPrelude = `
local ffi = require "ffi"
ffi.cdef "int fork(void); int waitpid(int pid, int *status, int options); void _exit(int code);"
function host_fork() return ffi.C.fork() end
function host_wait(pid)
	local st = ffi.new("int[1]")
	if ffi.C.waitpid(pid, st, 0) ~= pid or bit.band(st[0], 0x7f) ~= 0 then return -1 end
	return bit.rshift(bit.band(st[0], 0xff00), 8)
end
function host_exit(code) ffi.C._exit(code) end
`

// TestLuaAPI runs lua/test/api_test.lua against the Lua C module (PUC Lua
// 5.1, as Debian's app_lua) and against the LuaJIT FFI binding: same
// script, same expectations.
func TestLuaAPI(t *testing.T) {
	b := luaBuild(t)
	relaxed := filepath.Join(b.dir, "api-relaxed.toml")
	strict := filepath.Join(b.dir, "api-strict.toml")
	if err := os.WriteFile(relaxed, []byte(b.toml(`mode = "relaxed"`, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(strict, []byte(b.toml("mode = \"strict\"\nrequire_identity = true", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	// Under valgrind a cold x5u fetch over TLS is slow: more time.
	slowRelaxed, slowStrict := filepath.Join(b.dir, "api-relaxed-vg.toml"), filepath.Join(b.dir, "api-strict-vg.toml")
	// ...and the extension tokens, signed once, must stay fresh through it.
	for path, text := range map[string]string{slowRelaxed: b.toml("mode = \"relaxed\"\nmax_age = \"10m\"", ""), slowStrict: b.toml("mode = \"strict\"\nrequire_identity = true", "")} {
		if err := os.WriteFile(path, []byte(strings.Replace(text, `timeout = "1s"`, `timeout = "20s"`, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	host := filepath.Join(b.dir, "luahost")
	if out, err := exec.Command("gcc", "-std=c99", "-D_XOPEN_SOURCE=700", "-O2", "-Wall", "-Wextra", "-Werror",
		"-I/usr/include/lua5.1", "-o", host, "lua/test/host.c", "-llua5.1").CombinedOutput(); err != nil {
		t.Fatalf("build host: %v\n%s", err, out)
	}
	ffiDir, err := filepath.Abs("ffi")
	if err != nil {
		t.Fatal(err)
	}
	script := "lua/test/api_test.lua"
	ext := extensionTokens(t, b)
	tests := []struct {
		name string
		cmd  *exec.Cmd
		env  []string
	}{
		{"lua5.1 C module", exec.Command(host, script, relaxed, strict),
			// No Lua path: ./stirgate.lua here is the KEMI script, not a module.
			[]string{"LUA_CPATH=" + filepath.Join(b.dir, "?.so"), "LUA_PATH=" + filepath.Join(b.dir, "no-lua-modules", "?.lua")}},
		{"luajit FFI", exec.Command("luajit", "-e", luajitPrelude, script, relaxed, strict),
			[]string{"LUA_PATH=" + filepath.Join(ffiDir, "?.lua") + ";;", "LUA_CPATH=" + filepath.Join(b.dir, "no-c-modules", "?.so")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cmd.Env = append(os.Environ(), append(append(tc.env, extensionTokens(t, b)...), "STIRGATE_LIBRARY="+b.lib)...)
			out, err := tc.cmd.CombinedOutput()
			t.Logf("%s", strings.TrimSpace(string(out)))
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !apiSummary.Match(out) {
				t.Fatalf("no summary line")
			}
		})
	}

	// The C module frees every result of libstirgate: valgrind with the
	// Go-runtime suppressions of cshared/test (the fork check is left out:
	// the child would report the parent's heap as its own). Then the
	// controls: the same module built with one defect planted in its
	// handling of a verify result (plant_defect in lua/stirgate.c, a test
	// build only) must be failed by valgrind, with the defect reported
	// there, so the suppressions cannot hide the module's own errors and a
	// valgrind that died early cannot pass.
	vgEnv := append([]string{"LUA_PATH=" + filepath.Join(b.dir, "no-lua-modules", "?.lua"),
		"API_TEST_NO_FORK=1", "STIRGATE_LIBRARY=" + b.lib}, ext...)
	runVG := func(t *testing.T, env ...string) memcheck.Report {
		t.Helper()
		cmd, err := memcheck.Command(context.Background(), memcheck.Options{
			Suppressions: []string{"../cshared/test/go.supp"}, Env: append(vgEnv, env...)},
			host, script, slowRelaxed, slowStrict)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := memcheck.Run(cmd)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	t.Run("lua5.1 C module under valgrind", func(t *testing.T) {
		rep := runVG(t, "API_TEST_ITERATIONS=50", "LUA_CPATH="+filepath.Join(b.dir, "?.so"))
		if err := rep.Clean(apiSummary); err != nil {
			t.Fatalf("valgrind: %v\n%s", err, memcheck.Tail(rep.Output, 60))
		}
	})
	planted := filepath.Join(b.dir, "planted")
	if err := os.MkdirAll(planted, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-std=c99", "-D_XOPEN_SOURCE=700", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
		"-fPIC", "-shared", "-DSTIRGATE_PLANT_DEFECT", "-I/usr/include/lua5.1", "-I../cshared",
		"-o", filepath.Join(planted, "stirgate.so"), "lua/stirgate.c", "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("build planted module: %v\n%s", err, out)
	}
	for _, d := range memcheck.Defects {
		t.Run("valgrind catches a planted "+string(d), func(t *testing.T) {
			rep := runVG(t, "API_TEST_ITERATIONS=1", "STIRGATE_PLANT="+string(d), "LUA_CPATH="+filepath.Join(planted, "?.so"))
			// A leaked block may be named only by libstirgate's allocation
			// site: valgrind cannot always unwind through Go frames.
			if err := rep.Caught(d, apiSummary, "plant_defect (stirgate.c", "_Cfunc__Cmalloc"); err != nil {
				t.Fatalf("planted %s: %v\n%s", d, err, memcheck.Tail(rep.Output, 60))
			}
		})
	}
}

// extensionTokens signs, as a carrier would, what api_test.lua verifies for
// the PASSporT extensions: a SHAKEN PASSporT and a div (RFC 8946) that
// diverts its call to +12155550141, a div diverting from a number the
// SHAKEN call never reached (a broken chain), and a SHAKEN PASSporT with
// rich call data (RFC 9795). They travel as environment variables.
func extensionTokens(t *testing.T, b *luaBuilt) []string {
	t.Helper()
	ctx := context.Background()
	shaken := b.sign(t, luaCaller, time.Now())
	div, err := b.signer.SignDiv(ctx, core.DivRequest{Identity: []string{shaken}, Dest: []string{"+12155550141"}})
	if err != nil {
		t.Fatal(err)
	}
	broken, err := b.signer.SignDiv(ctx, core.DivRequest{Identity: []string{shaken}, Div: "+12155550199", Dest: []string{"+12155550141"}})
	if err != nil {
		t.Fatal(err)
	}
	rcd, err := b.signer.Sign(ctx, core.SignRequest{Orig: luaCaller, Dest: []string{luaCallee}, Attest: "A", Trusted: true,
		RCD: &core.RCD{Nam: "ACME \"Corp\" <Sales>"}, Crn: "Appointment reminder"})
	if err != nil {
		t.Fatal(err)
	}
	return []string{"API_TEST_SHAKEN=" + shaken, "API_TEST_DIV=" + div.Identity, "API_TEST_DIV_BROKEN=" + broken.Identity,
		"API_TEST_RCD=" + rcd.Identity}
}

// apiSummary is api_test.lua's closing line of a run with no failure.
var apiSummary = regexp.MustCompile(`api_test: \d+ checks, 0 failures`)
