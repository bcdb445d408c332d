// Command benchverify is the Kamailio half of `make bench-capacity`:
// Kamailio (kamailio-lua.cfg, app_lua with the Lua C module over
// libstirgate) verifying inbound INVITEs, measured with SIPp.
//
// In one run it measures raw crypto/ecdsa P-256 verify CPU time per
// operation in this process, then the CPU time of all Kamailio processes
// (utime+stime from /proc, summed over the main process and its children)
// per call, for calls without an Identity (the proxy's own cost: relay,
// transaction, dialog, and the library telling "no identity") and for
// calls with a valid one (warm x5u cache). The difference is what
// verification adds; it is printed beside raw verify. Then it steps the
// rate of verified calls up and reports the highest with p99 (INVITE to
// 200, through Kamailio to a SIPp UAS) under the limit and no failed call.
//
// A verified call counts only when the UAS received it with
// verstat=TN-Validation-Passed on From. It is a benchmark, not a test: it
// fails only when it cannot run or a CPU step has a failed call.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/config"
	"github.com/stirgate/stirgate/cshared/secsipid/secsipidtest"
	"github.com/stirgate/stirgate/internal/capbench"
	"github.com/stirgate/stirgate/kamailio/kamtest"
)

// The outside (a carrier) calls from here; 127.0.0.1 is the inside, whose
// INVITEs Kamailio would sign instead.
const carrierIP = "127.0.0.2"

func main() {
	rate := flag.Int("cpu-rate", 500, "calls per second of the CPU steps")
	secs := flag.Int("cpu-seconds", 5, "duration of each CPU step")
	rounds := flag.Int("rounds", 3, "rounds of the two CPU steps")
	stepSecs := flag.Int("step-seconds", 4, "duration of each latency step")
	rates := flag.String("rates", "250,500,1000,1500,2000,3000", "rates (calls/s) of the latency steps, ascending")
	children := flag.Int("children", 4, "Kamailio UDP workers")
	p99 := flag.Duration("p99", 20*time.Millisecond, "latency limit of a clean step")
	raw := flag.Duration("raw", 2*time.Second, "duration of the raw ECDSA measurement")
	flag.Parse()
	var rs []int
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench-capacity-kamailio: -rates: %q is not a rate\n", r)
			os.Exit(2)
		}
		rs = append(rs, n)
	}
	if err := run(context.Background(), *rate, *secs, *rounds, *stepSecs, rs, *children, *p99, *raw); err != nil {
		fmt.Fprintln(os.Stderr, "bench-capacity-kamailio:", err)
		os.Exit(1)
	}
}

func env(name string) (string, error) {
	v := os.Getenv(name)
	if v == "" {
		return "", fmt.Errorf("%s is not set (run through make bench-capacity)", name)
	}
	return filepath.Abs(v)
}

func run(ctx context.Context, rate, secs, rounds, stepSecs int, rates []int, children int, p99, rawDur time.Duration) error {
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
	tmp, err := os.MkdirTemp("", "bench-capacity-kamailio-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	fmt.Printf("== raw crypto/ecdsa P-256 in this process (%s)\n", rawDur)
	raw, err := capbench.MeasureRawECDSA(rawDur)
	if err != nil {
		return err
	}
	fmt.Printf("verify %7.1f µs CPU/op (%d ops)\n\n", us(raw.Verify), raw.VerifyOps)

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

[verifier]
trust = [%q]

[x5u]
lab_hosts = [%q]
ca_file = %q
cache_dir = %q
`, lab.Path("sp.key"), lab.Path("sp-chain.pem"), lab.X5U, lab.Path("root.pem"), lab.Host, lab.TLSCert, filepath.Join(tmp, "x5u"))), 0o644); err != nil {
		return err
	}
	cfg, err := config.Load(toml)
	if err != nil {
		return err
	}
	signer, err := cfg.NewSigner(nil, nil)
	if err != nil {
		return err
	}
	// A fresh token for each step: the verifier allows 60 s of age.
	token := func() (string, error) {
		r, err := signer.Sign(ctx, core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "A", Trusted: true})
		if err != nil {
			return "", err
		}
		return r.Identity, nil
	}

	if err := os.MkdirAll(filepath.Join(tmp, "kamailio"), 0o755); err != nil {
		return err
	}
	k, err := kamtest.StartContext(ctx, kamtest.Options{
		Config:   filepath.Join(root, "kamailio/kamailio-lua.cfg"),
		Children: children,
		// Transactions linger after their end (tm's wait timer): at a
		// thousand calls a second the default 64 MiB runs out.
		ShmMB: 256,
		PkgMB: 16,
		Dir:   filepath.Join(tmp, "kamailio"),
		Defines: []string{fmt.Sprintf("STIRGATE_CONFIG=%q", toml),
			fmt.Sprintf("STIRGATE_SCRIPT=%q", filepath.Join(root, "kamailio/stirgate.lua")),
			`INTERNAL_SOURCES="127.0.0.1"`},
		Env: []string{"STIRGATE_LIBRARY=" + lib, "LUA_CPATH=" + filepath.Join(luaDir, "?.so") + ";;"},
	})
	if err != nil {
		return err
	}
	defer k.Stop()
	pids := func() ([]int, error) {
		kids, err := k.Children()
		if err != nil {
			return nil, err
		}
		out := []int{k.PID}
		for _, p := range kids {
			out = append(out, p.PID)
		}
		return out, nil
	}

	// The UAS behind Kamailio; for verified calls it fails a call whose
	// From does not say TN-Validation-Passed, so the caller's call fails.
	uasPlain := filepath.Join(root, "kamailio/sipp/uas.xml")
	b, err := os.ReadFile(uasPlain)
	if err != nil {
		return err
	}
	const recvInvite = `<recv request="INVITE" crlf="true"/>`
	if !strings.Contains(string(b), recvInvite) {
		return fmt.Errorf("%s: no %s to add the verstat check to", uasPlain, recvInvite)
	}
	uasChecked := filepath.Join(tmp, "uas_verified.xml")
	checked := strings.Replace(string(b), recvInvite, `<recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="verstat=TN-Validation-Passed" search_in="hdr" header="From:" check_it="true" assign_to="verstat"/>
    </action>
  </recv>
  <Reference variables="verstat"/>`, 1)
	if err := os.WriteFile(uasChecked, []byte(checked), 0o644); err != nil {
		return err
	}

	step := 0
	load := func(verified bool, rate, secs int) (capbench.LoadResult, time.Duration, error) {
		step++
		dir := filepath.Join(tmp, "sipp", strconv.Itoa(step))
		scen := uasPlain
		hdr2 := "X-Case: none"
		if verified {
			scen = uasChecked
			id, err := token()
			if err != nil {
				return capbench.LoadResult{}, 0, err
			}
			hdr2 = "Identity: " + id
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return capbench.LoadResult{}, 0, err
		}
		uas, err := kamtest.SIPp{Scenario: scen, LocalIP: "127.0.0.1", Name: "uas", Dir: dir, Timeout: time.Duration(secs+60) * time.Second}.StartE()
		if err != nil {
			return capbench.LoadResult{}, 0, err
		}
		defer uas.Stop()
		ps, err := pids()
		if err != nil {
			return capbench.LoadResult{}, 0, err
		}
		c0, err := capbench.SettledCPU(ps)
		if err != nil {
			return capbench.LoadResult{}, 0, err
		}
		r, err := capbench.Load{Scenario: filepath.Join(root, "kamailio/sipp/uac.xml"), Dir: dir, Target: uas.Addr(), LocalIP: carrierIP,
			Rate: rate, Seconds: secs, Args: []string{"-rsa", k.Addr},
			Keys: map[string]string{"caller": "+12155550121", "callee": "+12155550131", "from_params": ";user=phone",
				"hdr1": "X-Bench: capacity", "hdr2": hdr2}}.Run(ctx)
		if err != nil {
			return r, 0, err
		}
		c1, err := capbench.SettledCPU(ps)
		return r, c1 - c0, err
	}

	// Warm-up: every worker loads libstirgate and reads the x5u (one
	// fetch, then the disk cache).
	if r, _, err := load(true, 50, 3); err != nil || !r.Clean(time.Hour) {
		return fmt.Errorf("warm-up: %v %v\n%s", err, r.Err, r.Output)
	}
	type row struct {
		name string
		r    capbench.LoadResult
		cpu  time.Duration
		per  time.Duration
	}
	// The two kinds alternate, rounds times, and each reports its median
	// round: the verification's share is a difference of two totals, which
	// a burst of other load during one step would otherwise distort.
	names := []string{"no Identity", "verified"}
	per := make([][]row, 2)
	for range rounds {
		for i, verified := range []bool{false, true} {
			r, cpu, err := load(verified, rate, secs)
			if err != nil {
				return err
			}
			if r.OK == 0 {
				return fmt.Errorf("%s CPU step: no call completed (%v)\n%s", names[i], r.Err, r.Output)
			}
			if r.Failed > 0 {
				// On a busy host a few calls time out; their CPU is spread
				// over the completed ones, which overstates the cost a little.
				fmt.Printf("warning: %s CPU step: %d of %d calls failed (%v)\n", names[i], r.Failed, r.Calls, r.Err)
			}
			per[i] = append(per[i], row{names[i], r, cpu, cpu / time.Duration(r.OK)})
		}
	}
	fmt.Printf("== Kamailio CPU per call (kamailio-lua.cfg, %d workers, %d calls/s, %d rounds of %d s; all Kamailio processes, /proc/PID/stat)\n", children, rate, rounds, secs)
	fmt.Printf("%-12s %-30s %10s\n", "call", "µs/call each round", "median")
	rows := make([]row, 2)
	for i := range per {
		var each []string
		for _, r := range per[i] {
			each = append(each, fmt.Sprintf("%.1f", us(r.per)))
		}
		sort.Slice(per[i], func(a, b int) bool { return per[i][a].per < per[i][b].per })
		rows[i] = per[i][len(per[i])/2]
		fmt.Printf("%-12s %-30s %10.1f\n", names[i], strings.Join(each, " "), us(rows[i].per))
	}
	add := rows[1].per - rows[0].per
	fmt.Printf("verification adds %.1f µs per INVITE = %.2f× raw verify (%.1f µs); the whole verified call is %.2f× raw verify\n\n",
		us(add), float64(add)/float64(raw.Verify), us(raw.Verify), float64(rows[1].per)/float64(raw.Verify))

	cores := runtime.NumCPU()
	fmt.Printf("== verified call rate steps (%d s each; clean = every call completed, none failed, p99 INVITE→200 < %s)\n", stepSecs, p99)
	fmt.Printf("%7s %7s %7s %8s %8s %8s %11s %9s %9s\n", "rate/s", "ok", "failed", "p50 ms", "p99 ms", "max ms", "Kamailio %", "UAC %", "µs/call")
	best, limit := 0, ""
	var bestP99 time.Duration
	for _, rt := range rates {
		r, cpu, err := load(true, rt, stepSecs)
		if err != nil {
			return err
		}
		per := time.Duration(0)
		if r.OK > 0 {
			per = cpu / time.Duration(r.OK)
		}
		fmt.Printf("%7d %7d %7d %8.1f %8.1f %8.1f %10.0f%% %8.0f%% %9.1f\n", rt, r.OK, r.Failed, ms(r.P50), ms(r.P99), ms(r.Max),
			100*float64(cpu)/float64(r.Wall), 100*float64(r.SIPpCPU)/float64(r.Wall), us(per))
		if !r.Clean(p99) {
			limit = fmt.Sprintf("at %d/s: %s", rt, capbench.Saturation(r, cpu, cores))
			break
		}
		best, bestP99 = rt, r.P99
	}
	if limit == "" {
		limit = "every step was clean (raise -rates)"
	}
	fmt.Printf("\nKamailio verified  highest clean rate %5d/s (p99 %.1f ms); first to saturate %s\n", best, ms(bestP99), limit)
	return k.Healthy()
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
