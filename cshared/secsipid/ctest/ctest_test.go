// Package ctest runs the C-level test of libsecsipid.so.1 (secsipid_ctest.c)
// against a lab PKI and a loopback HTTPS x5u server, plainly and under
// valgrind, and checks that the drop-in's header agrees with Debian's.
package ctest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stirgate/stirgate/cshared/secsipid/secsipidtest"
	"github.com/stirgate/stirgate/internal/memcheck"
	"github.com/stirgate/stirgate/internal/testlog"
)

func need(t *testing.T, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		t.Fatalf("%s not installed (make test-deps installs it): %v", prog, err)
	}
	return p
}

type fixture struct {
	lib, bin, dir string
	env           []string
}

func setup(t *testing.T, extraCFlags ...string) *fixture {
	t.Helper()
	need(t, "gcc")
	lib, err := secsipidtest.LibDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lab, err := secsipidtest.NewLabLog(dir, testlog.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.Close)
	cache := filepath.Join(dir, "cache")
	if err := os.Mkdir(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "secsipid_ctest")
	args := append([]string{"-O1", "-g", "-Wall", "-Wextra", "-Werror"}, extraCFlags...)
	args = append(args, "-o", bin, "c/secsipid_ctest.c", "-L"+lib, "-l:"+secsipidtest.SOName, "-lpthread")
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return &fixture{lib: lib, bin: bin, dir: dir, env: append(os.Environ(),
		"LD_LIBRARY_PATH="+lib,
		"SECSIPID_KEY="+lab.Path("sp.key"),
		"SECSIPID_CERT="+lab.Path("sp.pem"),
		"SECSIPID_CHAIN="+lab.Path("sp-chain.pem"),
		"SECSIPID_ROOT="+lab.Path("root.pem"),
		"SECSIPID_X5U="+lab.X5U,
		"SECSIPID_MISSING="+lab.Missing,
		"SECSIPID_CONFIG="+lab.Config,
		"SECSIPID_CACHE="+cache,
		"STIRGATE_SECSIPID_CONFIG=",
	)}
}

var summary = regexp.MustCompile(`(\d+) checks, 0 failures`)

func TestCAPI(t *testing.T) {
	f := setup(t)
	cmd := exec.Command(f.bin)
	cmd.Env = f.env
	out, err := cmd.CombinedOutput()
	if err != nil || !summary.Match(out) {
		t.Fatalf("C test failed: %v\n%s", err, out)
	}
	t.Log(summary.Find(out))
}

// TestCAPIValgrind runs the same program under memcheck: no leak of any
// output the caller frees, no invalid access on the C side.
func TestCAPIValgrind(t *testing.T) {
	f := setup(t)
	rep := runValgrind(t, f)
	if err := rep.Clean(summary); err != nil {
		t.Fatalf("valgrind: %v\n%s", err, memcheck.Tail(rep.Output, 60))
	}
}

// TestValgrindCatchesDefects proves the valgrind run can fail: the same
// program, planting one memory error in an output of the library, must be
// failed with that error reported in plant_defect. A valgrind that died
// early, or a report that only says "definitely lost: 0 bytes", fails the
// control.
func TestValgrindCatchesDefects(t *testing.T) {
	f := setup(t)
	for _, d := range memcheck.Defects {
		t.Run(string(d), func(t *testing.T) {
			rep := runValgrind(t, f, "SECSIPID_PLANT="+string(d))
			// valgrind cannot always unwind a leaked block through Go frames
			// back to the C caller: the drop-in's allocation site names it.
			if err := rep.Caught(d, summary, "plant_defect (secsipid_ctest.c", "Cfunc_sg_copy"); err != nil {
				t.Fatalf("planted %s: %v\n%s", d, err, memcheck.Tail(rep.Output, 60))
			}
		})
	}
}

func runValgrind(t *testing.T, f *fixture, env ...string) memcheck.Report {
	t.Helper()
	cmd, err := memcheck.Command(context.Background(), memcheck.Options{
		Suppressions: []string{"c/go-runtime.supp"}, Env: env}, f.bin)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(append(f.env, memcheck.Env...), env...)
	rep, err := memcheck.Run(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestHeaderMatchesDebian compiles a translation unit that includes both
// Debian's libsecsipid.h and the drop-in's secsipid.h: any signature that
// differs is a "conflicting types" error.
func TestHeaderMatchesDebian(t *testing.T) {
	need(t, "gcc")
	const deb = "/usr/include/libsecsipid.h"
	if _, err := os.Stat(deb); err != nil {
		args := []string{"apt-get", "install", "-y", "-qq", "--no-install-recommends", "libsecsipid-dev"}
		if os.Geteuid() != 0 {
			args = append([]string{"sudo", "-n"}, args...)
		}
		install := exec.Command(args[0], args[1:]...)
		install.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := install.CombinedOutput(); err != nil {
			t.Fatalf("%s missing and libsecsipid-dev could not be installed: %v\n%s", deb, err, out)
		}
	}
	src := filepath.Join(t.TempDir(), "compat.c")
	code := "#include <libsecsipid.h>\n#include \"" + mustAbs(t, "../secsipid.h") + "\"\nint main(void) { return 0; }\n"
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-Wall", "-Werror", "-fsyntax-only", src).CombinedOutput(); err != nil {
		t.Fatalf("headers disagree: %v\n%s", err, out)
	}
	// And a deliberate mismatch must be caught, or the check proves nothing.
	bad := code + "extern int SecSIPIDCheck(char* identityVal, long identityLen, int expireVal, char* pubkeyPath, int timeoutVal);\n"
	if err := os.WriteFile(src, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("gcc", "-fsyntax-only", src).Run(); err == nil {
		t.Fatal("a conflicting declaration compiled: the header check is blind")
	}
}

// TestExports checks the dynamic symbol table and SONAME: exactly what
// Kamailio's secsipid_proc.so imports, plus the two newer functions.
func TestExports(t *testing.T) {
	lib, err := secsipidtest.LibDir()
	if err != nil {
		t.Fatal(err)
	}
	so := filepath.Join(lib, secsipidtest.SOName)
	out, err := exec.Command(need(t, "objdump"), "-p", so).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`SONAME\s+libsecsipid\.so\.1\n`).Match(out) {
		t.Fatalf("SONAME is not libsecsipid.so.1:\n%s", out)
	}
	syms, err := exec.Command(need(t, "nm"), "-D", "--defined-only", so).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{"SecSIPIDCheck", "SecSIPIDCheckFull", "SecSIPIDCheckFullPubKey",
		"SecSIPIDGetIdentity", "SecSIPIDGetIdentityPrvKey", "SecSIPIDGetURLContent",
		"SecSIPIDOptSetN", "SecSIPIDOptSetS", "SecSIPIDOptSetV", "SecSIPIDSetFileCacheOptions",
		"SecSIPIDSignJSONHP", "SecSIPIDSignJSONHPPrvKey", "SecSIPIDOptGetN"} {
		if !regexp.MustCompile(`(?m) T ` + fn + `$`).Match(syms) {
			t.Errorf("%s not exported", fn)
		}
	}
	// The Go functions behind them skip the fork guard of shim.c: they
	// must not be callable from outside.
	if m := regexp.MustCompile(`(?m) T (sgsip_\w+)$`).FindSubmatch(syms); m != nil {
		t.Errorf("internal export %s is in the dynamic symbol table", m[1])
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
