// Command benchsign is `make bench-kamailio-module`: the Kamailio CPU time
// per signed call through the three ways stirgate runs in Kamailio, in one
// run, on the same lab, the same 4 workers and the same SIPp load:
//
//   - the native module (kamailio/module, kamailio-native.cfg),
//   - app_lua with the Lua C module (kamailio-lua.cfg + stirgate.lua),
//   - Kamailio's secsipid module on the libsecsipid drop-in
//     (kamailio-secsipid.cfg).
//
// Each gateway gets a warm-up (every worker loads its library) and then a
// measured step at a fixed rate; CPU is utime+stime of all its processes
// over the step, divided by the calls completed. It is a benchmark, not a
// test: it prints numbers and fails only when it cannot run or a call
// fails. The paths of the built artifacts come from the environment (see
// kamailio/kamailio.mk).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stirgate/stirgate/cshared/secsipid/secsipidtest"
	"github.com/stirgate/stirgate/kamailio/kamtest"
)

const pbxIP = "127.0.0.2"

func main() {
	rate := flag.Int("rate", 150, "calls per second of the measured step")
	dur := flag.Duration("step", 10*time.Second, "duration of the measured step")
	children := flag.Int("children", 4, "Kamailio UDP workers")
	flag.Parse()
	if err := run(*rate, *dur, *children); err != nil {
		fmt.Fprintln(os.Stderr, "bench-kamailio-module:", err)
		os.Exit(1)
	}
}

func env(name string) (string, error) {
	v := os.Getenv(name)
	if v == "" {
		return "", fmt.Errorf("%s is not set (run through make bench-kamailio-module)", name)
	}
	return filepath.Abs(v)
}

type gateway struct {
	name    string
	mapping string // a library every worker must have mapped
	opts    kamtest.Options
}

func run(rate int, dur time.Duration, children int) error {
	root, err := secsipidtest.RepoRoot()
	if err != nil {
		return err
	}
	lib, err := env("STIRGATE_LIB")
	if err != nil {
		return err
	}
	luaDir, err := env("STIRGATE_LUA_DIR")
	if err != nil {
		return err
	}
	module, err := env("STIRGATE_MODULE")
	if err != nil {
		return err
	}
	secsipidDir, err := env("SECSIPID_LIB_DIR")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "bench-kamailio-module-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	lab, err := secsipidtest.NewLab(filepath.Join(tmp, "lab"))
	if err != nil {
		return err
	}
	defer lab.Close()
	toml := filepath.Join(tmp, "stirgate.toml")
	if err := os.WriteFile(toml, []byte(fmt.Sprintf(`[log]
level = "warn"

[signer]
key = %q
cert = %q
x5u = %q

[[policy.customer]]
name = "pbx"
numbers = ["12155550121"]
sources = [%q]
`, lab.Path("sp.key"), lab.Path("sp-chain.pem"), lab.X5U, pbxIP)), 0o644); err != nil {
		return err
	}
	script := filepath.Join(root, "kamailio/stirgate.lua")
	gws := []gateway{
		{"native module", lib, kamtest.Options{
			Config: filepath.Join(root, "kamailio/kamailio-native.cfg"),
			Defines: []string{fmt.Sprintf("STIRGATE_CONFIG=%q", toml), fmt.Sprintf("STIRGATE_MODULE=%q", module),
				fmt.Sprintf("INTERNAL_SOURCES=%q", pbxIP)},
			Env: []string{"STIRGATE_LIBRARY=" + lib},
		}},
		{"app_lua + Lua C module", lib, kamtest.Options{
			Config: filepath.Join(root, "kamailio/kamailio-lua.cfg"),
			Defines: []string{fmt.Sprintf("STIRGATE_CONFIG=%q", toml), fmt.Sprintf("STIRGATE_SCRIPT=%q", script),
				fmt.Sprintf("INTERNAL_SOURCES=%q", pbxIP)},
			Env: []string{"STIRGATE_LIBRARY=" + lib, "LUA_CPATH=" + filepath.Join(luaDir, "?.so") + ";;"},
		}},
		{"secsipid + libsecsipid drop-in", filepath.Join(secsipidDir, "libsecsipid.so.1"), kamtest.Options{
			Config: filepath.Join(root, "kamailio/kamailio-secsipid.cfg"),
			Defines: []string{`PBX_IP="` + pbxIP + `"`, `STIR_KEY="` + lab.Path("sp.key") + `"`, `STIR_X5U="` + lab.X5U + `"`,
				`STIR_CA_OPT="CertCAFile=` + lab.Path("root.pem") + `"`, `STIR_CACHE_DIR="` + filepath.Join(tmp, "x5u") + `"`},
			Env: []string{"LD_LIBRARY_PATH=" + secsipidDir, "STIRGATE_SECSIPID_CONFIG="},
		}},
	}
	per := make([]time.Duration, len(gws))
	for i, g := range gws {
		d, err := bench(root, filepath.Join(tmp, strconv.Itoa(i)), g, rate, dur, children)
		if err != nil {
			return fmt.Errorf("%s: %w", g.name, err)
		}
		per[i] = d
	}
	fmt.Printf("\n== Kamailio CPU per signed call (%d workers, %d calls/s for %s)\n", children, rate, dur)
	for i, g := range gws {
		fmt.Printf("%-32s %s  (%.2f× the native module)\n", g.name, per[i].Round(time.Microsecond), float64(per[i])/float64(per[0]))
	}
	return nil
}

// bench runs one gateway: warm-up, then the measured step.
func bench(root, dir string, g gateway, rate int, dur time.Duration, children int) (time.Duration, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	carrierPort, err := kamtest.FreeUDPPort("127.0.0.1")
	if err != nil {
		return 0, err
	}
	carrier, err := kamtest.SIPp{Scenario: filepath.Join(root, "kamailio/secsipid/testdata/uas_load.xml"),
		LocalPort: carrierPort, Name: "carrier", Dir: dir, Timeout: time.Hour}.StartE()
	if err != nil {
		return 0, err
	}
	defer carrier.Stop()
	carrierURI := "sip:127.0.0.1:" + strconv.Itoa(carrierPort)
	o := g.opts
	o.Dir, o.Children, o.Debug = dir, children, 1
	o.Defines = append(o.Defines, fmt.Sprintf("CARRIER_URI=%q", carrierURI), fmt.Sprintf("CARRIER=%q", carrierURI))
	k, err := kamtest.StartContext(context.Background(), o)
	if err != nil {
		return 0, err
	}
	defer k.Stop()

	step := func(name string, d time.Duration) (kamtest.Result, time.Duration, error) {
		calls := rate * int(d/time.Second)
		cpu0, err := cpuTime(k)
		if err != nil {
			return kamtest.Result{}, 0, err
		}
		r, err := kamtest.SIPp{
			Scenario: filepath.Join(root, "kamailio/sipp/uac.xml"), Remote: k.Addr, LocalIP: pbxIP,
			Calls: calls, Rate: float64(rate), Limit: rate, Dir: dir, Name: name, Timeout: 4*d + 30*time.Second,
			Keys: map[string]string{"caller": "+12155550121", "callee": "+12155550131", "from_params": ";user=phone",
				"hdr1": "X-Bench: 1", "hdr2": "X-Bench: 2"},
		}.StartE()
		if err != nil {
			return kamtest.Result{}, 0, err
		}
		res := r.Wait()
		cpu1, err := cpuTime(k)
		if err != nil {
			return res, 0, err
		}
		if res.Stats.Failed > 0 || res.Stats.Successful != calls {
			return res, 0, fmt.Errorf("%s: %d of %d calls failed: %v", name, calls-res.Stats.Successful, calls, res.Err())
		}
		return res, cpu1 - cpu0, nil
	}
	if _, _, err := step("warm", 3*time.Second); err != nil {
		return 0, err
	}
	if err := checkWorkers(k, g.mapping, children); err != nil {
		return 0, err
	}
	res, cpu, err := step("measure", dur)
	if err != nil {
		return 0, err
	}
	per := cpu / time.Duration(res.Stats.Successful)
	fmt.Printf("%-32s %6d calls  INVITE→200 mean %-6s  Kamailio CPU %-8s  per call %s\n", g.name,
		res.Stats.Successful, res.Stats.ResponseTime, cpu.Round(10*time.Millisecond), per.Round(time.Microsecond))
	if err := k.Healthy(); err != nil {
		return 0, err
	}
	return per, nil
}

// checkWorkers: every UDP worker has the library mapped, so the step
// measures signing, not loading.
func checkWorkers(k *kamtest.Kamailio, lib string, want int) error {
	if l, err := filepath.EvalSymlinks(lib); err == nil {
		lib = l
	}
	kids, err := k.Children()
	if err != nil {
		return err
	}
	n := 0
	for _, p := range kids {
		if p.HasMapping(lib) {
			n++
		}
	}
	if n < want {
		return fmt.Errorf("%d workers map %s after warm-up, want %d", n, lib, want)
	}
	return nil
}

// cpuTime sums utime and stime of Kamailio's main process and children
// (/proc/PID/stat fields 14 and 15, in clock ticks of 10 ms).
func cpuTime(k *kamtest.Kamailio) (time.Duration, error) {
	kids, err := k.Children()
	if err != nil {
		return 0, err
	}
	pids := []int{k.PID}
	for _, p := range kids {
		pids = append(pids, p.PID)
	}
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, err
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 {
			return 0, fmt.Errorf("/proc/%d/stat: short", pid)
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(u+st) * 10 * time.Millisecond
	}
	return total, nil
}
