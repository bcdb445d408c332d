// Command benchkam is `make bench-kamailio`: the signing rate Kamailio
// sustains with its secsipid module on stirgate's libsecsipid.so.1 and on
// Debian's, with the same config (kamailio/kamailio-secsipid.cfg), the same
// 4 workers and the same SIPp scenarios. SIPp steps the call rate up until
// calls fail, the INVITE→200 time rises well above its low-rate value, or
// SIPp cannot keep the rate; the last clean step is the maximum.
//
// It is a benchmark, not a test: it prints numbers and fails only when it
// cannot run. On a shared machine the absolute rates move with the load;
// both libraries run back to back so that their ratio means something.
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

type step struct {
	rate    int
	stats   kamtest.Stats
	elapsed time.Duration
	cpu     time.Duration // CPU time of all Kamailio processes during the step
	ok      bool
	why     string
}

// perCall is the Kamailio CPU time per call of a step: what signing costs
// there, independent of where the machine saturates.
func (s step) perCall() time.Duration {
	if s.stats.Successful == 0 {
		return 0
	}
	return s.cpu / time.Duration(s.stats.Successful)
}

func main() {
	dur := flag.Duration("step", 5*time.Second, "duration of each rate step")
	start := flag.Int("start", 100, "first rate (calls per second)")
	maxRate := flag.Int("max", 6000, "highest rate tried")
	children := flag.Int("children", 4, "Kamailio UDP workers")
	flag.Parse()
	if err := run(*dur, *start, *maxRate, *children); err != nil {
		fmt.Fprintln(os.Stderr, "bench-kamailio:", err)
		os.Exit(1)
	}
}

func run(dur time.Duration, start, maxRate, children int) error {
	root, err := secsipidtest.RepoRoot()
	if err != nil {
		return err
	}
	lib, err := secsipidtest.LibDir()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "bench-kamailio-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	lab, err := secsipidtest.NewLab(filepath.Join(tmp, "lab"))
	if err != nil {
		return err
	}
	defer lab.Close()

	libs := []struct {
		name, env, mapping string
	}{
		{"stirgate libsecsipid.so.1", "LD_LIBRARY_PATH=" + lib, filepath.Join(lib, secsipidtest.SOName)},
		{"Debian libsecsipid.so.1", "LD_LIBRARY_PATH=", "/usr/lib/x86_64-linux-gnu/libsecsipid.so.1"},
	}
	best := make([]step, len(libs))
	// CPU per call at each rate both libraries ran cleanly.
	clean := make([]map[int]step, len(libs))
	for i, l := range libs {
		fmt.Printf("\n== %s (%d workers, %s per step)\n", l.name, children, dur)
		steps, err := bench(root, filepath.Join(tmp, strconv.Itoa(i)), lab, l.env, l.mapping, dur, start, maxRate, children)
		if err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		clean[i] = map[int]step{}
		for _, s := range steps {
			if s.ok {
				best[i] = s
				clean[i][s.rate] = s
			}
		}
	}
	fmt.Printf("\n== maximum signing rate through Kamailio (clean steps)\n")
	for i, l := range libs {
		fmt.Printf("%-28s %5d calls/s  (INVITE→200 mean %s)\n", l.name, best[i].rate, rtt(best[i].stats.ResponseTime))
	}
	if best[1].rate > 0 {
		fmt.Printf("ratio stirgate/Debian: %.2f\n", float64(best[0].rate)/float64(best[1].rate))
	}
	// Where both saturate at the same step, the limit is the machine (SIPp
	// and Kamailio share its cores), not signing: CPU per call tells the
	// libraries apart.
	var ours, theirs time.Duration
	n := 0
	for rate, a := range clean[0] {
		if b, ok := clean[1][rate]; ok && rate >= 150 {
			ours += a.perCall()
			theirs += b.perCall()
			n++
		}
	}
	if n > 0 && ours > 0 {
		fmt.Printf("\n== Kamailio CPU per signed call (mean over %d clean rates ≥ 150 cps both ran)\n", n)
		fmt.Printf("%-28s %s\n", libs[0].name, (ours / time.Duration(n)).Round(time.Microsecond))
		fmt.Printf("%-28s %s\n", libs[1].name, (theirs / time.Duration(n)).Round(time.Microsecond))
		fmt.Printf("ratio Debian/stirgate: %.2f\n", float64(theirs)/float64(ours))
	}
	return nil
}

func bench(root, dir string, lab *secsipidtest.Lab, env, mapping string, dur time.Duration, start, maxRate, children int) ([]step, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	carrierPort, err := kamtest.FreeUDPPort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	carrier, err := kamtest.SIPp{Scenario: filepath.Join(root, "kamailio/secsipid/testdata/uas_load.xml"),
		LocalPort: carrierPort, Name: "carrier", Dir: dir, Timeout: time.Hour}.StartE()
	if err != nil {
		return nil, err
	}
	defer carrier.Stop()
	k, err := kamtest.StartContext(context.Background(), kamtest.Options{
		Config:   filepath.Join(root, "kamailio/kamailio-secsipid.cfg"),
		Children: children,
		Dir:      dir,
		Env:      []string{env, "STIRGATE_SECSIPID_CONFIG="},
		Defines: []string{
			`PBX_IP="` + pbxIP + `"`,
			`CARRIER="sip:127.0.0.1:` + strconv.Itoa(carrierPort) + `"`,
			`STIR_KEY="` + lab.Path("sp.key") + `"`,
			`STIR_X5U="` + lab.X5U + `"`,
			`STIR_CA_OPT="CertCAFile=` + lab.Path("root.pem") + `"`,
			`STIR_CACHE_DIR="` + filepath.Join(dir, "x5u") + `"`,
		},
		Debug: 1, // no per-call INFO lines in the log for either library
	})
	if err != nil {
		return nil, err
	}
	defer k.Stop()

	var steps []step
	var base time.Duration
	for rate := start; rate <= maxRate; rate = next(rate) {
		calls := rate * int(dur/time.Second)
		cpu0, err := cpuTime(k)
		if err != nil {
			return steps, err
		}
		began := time.Now()
		r, err := kamtest.SIPp{
			Scenario: filepath.Join(root, "kamailio/sipp/uac.xml"), Remote: k.Addr, LocalIP: pbxIP,
			Calls: calls, Rate: float64(rate), Limit: rate, Dir: dir, Name: fmt.Sprintf("uac-%d", rate),
			Timeout: 4*dur + 30*time.Second,
			Keys: map[string]string{"caller": "+12155550121", "callee": "+12155550131", "from_params": ";user=phone",
				"hdr1": "X-Bench: 1", "hdr2": "X-Bench-Rate: " + strconv.Itoa(rate)},
		}.StartE()
		if err != nil {
			return steps, err
		}
		res := r.Wait()
		cpu1, err := cpuTime(k)
		if err != nil {
			return steps, err
		}
		s := step{rate: rate, stats: res.Stats, elapsed: time.Since(began), cpu: cpu1 - cpu0, ok: true}
		if len(steps) == 0 {
			// The library is loaded by now: say which one served the calls.
			if err := checkMapping(k, mapping); err != nil {
				return nil, err
			}
			base = max(res.Stats.ResponseTime, time.Millisecond)
		}
		switch {
		case res.Stats.Failed > 0 || res.Stats.Successful != calls:
			s.ok, s.why = false, fmt.Sprintf("%d of %d calls failed", calls-res.Stats.Successful, calls)
		case res.Stats.ResponseTime > 10*base && res.Stats.ResponseTime > 20*time.Millisecond:
			s.ok, s.why = false, fmt.Sprintf("INVITE→200 %s, %d× the low-rate %s", res.Stats.ResponseTime, res.Stats.ResponseTime/base, base)
		case s.elapsed > dur*3/2+2*time.Second:
			s.ok, s.why = false, fmt.Sprintf("%d calls took %s: rate not kept", calls, s.elapsed.Round(time.Millisecond))
		case k.Healthy() != nil:
			s.ok, s.why = false, k.Healthy().Error()
		}
		steps = append(steps, s)
		verdict := "ok"
		if !s.ok {
			verdict = "STOP: " + s.why
		}
		fmt.Printf("  %5d cps  %6d calls  %-6s  INVITE→200 %-6s  retrans %-5d  Kamailio CPU/call %-8s %s\n", rate, calls,
			s.elapsed.Round(100*time.Millisecond), rtt(res.Stats.ResponseTime), res.Stats.Retransmissions,
			s.perCall().Round(time.Microsecond), verdict)
		if !s.ok {
			break
		}
		time.Sleep(time.Second) // let transactions of the last step expire
	}
	return steps, nil
}

// next steps by a quarter, so that the maximum is known within 25%.
func next(rate int) int { return rate + max(rate/4, 25) }

func checkMapping(k *kamtest.Kamailio, want string) error {
	if w, err := filepath.EvalSymlinks(want); err == nil {
		want = w
	}
	kids, err := k.Children()
	if err != nil {
		return err
	}
	for _, p := range kids {
		m, err := p.Maps()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(m, "\n") {
			if strings.Contains(line, "libsecsipid") {
				f := strings.Fields(line)
				got := f[len(f)-1]
				if got != want {
					return fmt.Errorf("worker %d maps %s, want %s", p.PID, got, want)
				}
				fmt.Printf("  worker %d maps %s\n", p.PID, got)
				return nil
			}
		}
	}
	return fmt.Errorf("no worker maps a libsecsipid")
}

// rtt prints SIPp's millisecond-resolution mean.
func rtt(d time.Duration) string {
	if d < time.Millisecond {
		return "<1ms"
	}
	return d.String()
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
		// The command name may hold spaces: fields count from its ')'.
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
