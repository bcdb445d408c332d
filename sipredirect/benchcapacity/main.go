// Command benchcapacity is `make bench-capacity`: the capacity of one
// `stirgate serve` (the SIP redirect server) measured with SIPp.
//
// It runs the built binary with a lab config (one UDP listener in auto
// mode, outcomes recorded to SQLite as in production) and, in one run:
//
//   - measures raw crypto/ecdsa P-256 sign and verify CPU time per
//     operation in this process;
//   - drives a signed 302 and a verified 302 (warm x5u cache) at a fixed
//     rate and divides the server's CPU time over the step (utime+stime
//     from /proc/PID/stat) by the answered INVITEs, beside raw ECDSA;
//   - steps the rate up for each and reports the highest rate with p99
//     under the limit and no failed call, and what saturated first at the
//     step that missed (SIPp's CPU from its rusage, the server's from
//     /proc);
//   - measures the transport floor (floor.go) with the same SIPp steps:
//     a responder answering a canned 302 through the same UDP layer, whose
//     CPU per call plus raw ECDSA is the lowest ratio any such server
//     reaches on this host.
//
// It is a benchmark, not a test: it prints a table, and exits non-zero
// only when it cannot run, a CPU step has a failed call, or -enforce is
// given and a CPU ratio misses its target.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/config"
	"github.com/stirgate/stirgate/internal/capbench"
	"github.com/stirgate/stirgate/outcome"
)

// Targets of the issue "Capacity of one node": the server path may cost
// this much over the raw signature it wraps.
const (
	signTarget   = 1.5
	verifyTarget = 1.3
)

type options struct {
	bin       string
	scenarios string
	cpuRate   int
	cpuSecs   int
	stepSecs  int
	rates     []int
	p99       time.Duration
	raw       time.Duration
	enforce   bool
}

func main() {
	var o options
	rates := flag.String("rates", "250,500,1000,1500,2000,3000,4000,6000,8000,10000", "rates (calls/s) of the latency steps, ascending")
	flag.StringVar(&o.bin, "bin", os.Getenv("STIRGATE_BIN"), "stirgate binary (default $STIRGATE_BIN)")
	flag.StringVar(&o.scenarios, "scenarios", "sipredirect/testdata/sipp", "directory of the SIPp scenarios")
	flag.IntVar(&o.cpuRate, "cpu-rate", 1000, "rate (calls/s) of the CPU steps")
	flag.IntVar(&o.cpuSecs, "cpu-seconds", 8, "duration of each CPU step")
	flag.IntVar(&o.stepSecs, "step-seconds", 4, "duration of each latency step")
	flag.DurationVar(&o.p99, "p99", 20*time.Millisecond, "latency limit of a clean step")
	flag.DurationVar(&o.raw, "raw", 4*time.Second, "duration of each raw ECDSA measurement (half before, half after the CPU steps)")
	flag.BoolVar(&o.enforce, "enforce", false, "exit 1 when a CPU ratio misses its target")
	floorAddr := flag.String("floor-responder", "", "run as the transport floor responder on this UDP address (the benchmark starts it so)")
	flag.Parse()
	if *floorAddr != "" {
		if err := floorMain(*floorAddr); err != nil {
			fmt.Fprintln(os.Stderr, "floor responder:", err)
			os.Exit(1)
		}
		return
	}
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench-capacity: -rates: %q is not a rate\n", r)
			os.Exit(2)
		}
		o.rates = append(o.rates, n)
	}
	if o.bin == "" {
		fmt.Fprintln(os.Stderr, "bench-capacity: -bin or STIRGATE_BIN is required (make bench-capacity sets it)")
		os.Exit(2)
	}
	missed, err := run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-capacity:", err)
		os.Exit(1)
	}
	if missed && o.enforce {
		os.Exit(1)
	}
}

// server is a running `stirgate serve`.
type server struct {
	cmd     *exec.Cmd
	sipAddr string
	cfgPath string
	log     string
}

func run(ctx context.Context, o options) (missed bool, err error) {
	cores := runtime.NumCPU()
	tmp, err := os.MkdirTemp("", "bench-capacity-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)

	// Raw ECDSA is measured before and after the server's CPU steps, and
	// averaged, so that both sides of a ratio saw the same host load.
	rawBefore, err := capbench.MeasureRawECDSA(o.raw / 2)
	if err != nil {
		return false, err
	}

	srv, err := startServer(ctx, o, tmp)
	if err != nil {
		return false, err
	}
	defer srv.stop()
	signer, err := labSigner(srv.cfgPath)
	if err != nil {
		return false, err
	}
	// A fresh token for each step: the verifier allows 60 s of age.
	token := func() (string, error) {
		r, err := signer.Sign(ctx, core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "A", Trusted: true})
		if err != nil {
			return "", err
		}
		return r.Identity, nil
	}
	kinds := []struct {
		name, scenario string
		raw            time.Duration
		target         float64
		rawName        string
	}{
		{"signed 302", "sign.xml", 0, signTarget, "raw sign"}, // raw: after the CPU steps
		{"verified 302", "verify_load.xml", 0, verifyTarget, "raw verify"},
	}
	step, answered := 0, 0
	// loadOn runs one SIPp step against target and returns the CPU that
	// process pid spent on it.
	loadOn := func(target string, pid int, scenario string, rate, secs int) (capbench.LoadResult, time.Duration, error) {
		step++
		keys := map[string]string{}
		if scenario == "verify_load.xml" {
			id, err := token()
			if err != nil {
				return capbench.LoadResult{}, 0, err
			}
			keys["identity"] = id
		}
		c0, err := capbench.SettledCPU([]int{pid})
		if err != nil {
			return capbench.LoadResult{}, 0, err
		}
		r, err := capbench.Load{Scenario: filepath.Join(o.scenarios, scenario), Dir: filepath.Join(tmp, "sipp", strconv.Itoa(step)),
			Target: target, Rate: rate, Seconds: secs, Keys: keys}.Run(ctx)
		if err != nil {
			return r, 0, err
		}
		c1, err := capbench.SettledCPU([]int{pid})
		return r, c1 - c0, err
	}
	load := func(scenario string, rate, secs int) (capbench.LoadResult, time.Duration, error) {
		r, cpu, err := loadOn(srv.sipAddr, srv.cmd.Process.Pid, scenario, rate, secs)
		answered += r.OK
		return r, cpu, err
	}

	// Warm-up: the first verification fetches the x5u (from the server's
	// own lab certificate endpoint); both paths get their first calls.
	for _, k := range kinds {
		if r, _, err := load(k.scenario, 50, 2); err != nil || !r.Clean(time.Hour) {
			return false, fmt.Errorf("warm-up %s: %v %v\n%s", k.name, err, r.Err, r.Output)
		}
	}

	type cpuRow struct {
		perCall time.Duration
		r       capbench.LoadResult
		cpu     time.Duration
	}
	cpuRows := make([]cpuRow, len(kinds))
	for i, k := range kinds {
		r, cpu, err := load(k.scenario, o.cpuRate, o.cpuSecs)
		if err != nil {
			return false, err
		}
		if r.OK == 0 {
			return false, fmt.Errorf("%s CPU step: no call answered (%v)\n%s", k.name, r.Err, r.Output)
		}
		if r.Failed > 0 {
			// On a busy host a few answers come after SIPp's 2 s; their CPU
			// is spread over the others, which overstates the cost a little.
			fmt.Printf("warning: %s CPU step: %d of %d calls failed (%v)\n", k.name, r.Failed, r.Calls, r.Err)
		}
		cpuRows[i] = cpuRow{cpu / time.Duration(r.OK), r, cpu}
	}

	rawAfter, err := capbench.MeasureRawECDSA(o.raw / 2)
	if err != nil {
		return false, err
	}
	raw := capbench.RawECDSA{Sign: (rawBefore.Sign + rawAfter.Sign) / 2, Verify: (rawBefore.Verify + rawAfter.Verify) / 2,
		SignOps: rawBefore.SignOps + rawAfter.SignOps, VerifyOps: rawBefore.VerifyOps + rawAfter.VerifyOps}
	kinds[0].raw, kinds[1].raw = raw.Sign, raw.Verify
	fmt.Printf("== raw crypto/ecdsa P-256 in this process (%s before and %s after the CPU steps)\n", o.raw/2, o.raw/2)
	fmt.Printf("sign   %7.1f µs CPU/op (%.1f before, %.1f after; %d ops)\nverify %7.1f µs CPU/op (%.1f before, %.1f after; %d ops)\n\n",
		us(raw.Sign), us(rawBefore.Sign), us(rawAfter.Sign), raw.SignOps, us(raw.Verify), us(rawBefore.Verify), us(rawAfter.Verify), raw.VerifyOps)

	fmt.Printf("== server CPU per answered INVITE (stirgate serve, %d calls/s for %d s, utime+stime from /proc/PID/stat)\n", o.cpuRate, o.cpuSecs)
	fmt.Printf("%-14s %7s %9s %12s %12s %8s %8s %s\n", "answer", "calls", "CPU", "µs/INVITE", "raw µs/op", "ratio", "target", "")
	for i, k := range kinds {
		c := cpuRows[i]
		ratio := float64(c.perCall) / float64(k.raw)
		verdict := "met"
		if ratio > k.target {
			verdict, missed = "MISSED", true
		}
		fmt.Printf("%-14s %7d %8.2fs %12.1f %12.1f %7.2f× %7.2f× %s (%s)\n", k.name, c.r.OK, c.cpu.Seconds(), us(c.perCall), us(k.raw), ratio, k.target, verdict, k.rawName)
	}
	// Who saturates first, from CPU per call rather than from a noisy
	// breaking point: SIPp is one thread (one core at most); the server
	// and SIPp share the host's cores.
	fmt.Println("\nwho saturates first, from CPU per call (SIPp's from its rusage):")
	for i, k := range kinds {
		c := cpuRows[i]
		sippPer := c.r.SIPpCPU / time.Duration(c.r.OK)
		sippMax := float64(time.Second) / float64(sippPer)                           // SIPp's one core full
		shared := float64(cores) * float64(time.Second) / float64(c.perCall+sippPer) // the cores full, both on them
		alone := float64(cores) * float64(time.Second) / float64(c.perCall)          // server alone on the cores
		first := "the server"
		if sippMax < shared {
			first = "SIPp"
		}
		fmt.Printf("%-14s server %.1f µs, SIPp %.1f µs per call: SIPp's core is full at %.0f/s, the %d shared cores at %.0f/s: %s saturates first (server alone on %d cores: %.0f/s)\n",
			k.name, us(c.perCall), us(sippPer), sippMax, cores, shared, first, cores, alone)
	}
	fmt.Println()

	fmt.Printf("== rate steps (%d s each; clean = every call answered, none failed, p99 < %s)\n", o.stepSecs, o.p99)
	fmt.Printf("%-14s %7s %7s %7s %8s %8s %8s %9s %9s %10s\n", "answer", "rate/s", "ok", "failed", "p50 ms", "p99 ms", "max ms", "server %", "SIPp %", "µs/INVITE")
	type best struct {
		rate  int
		p99   time.Duration
		limit string
		// The highest step with no failed call (clean or not by p99) and
		// the server's CPU per answered INVITE there: the transport floor
		// is measured at it too.
		busyRate int
		busyPer  time.Duration
	}
	bests := make([]best, len(kinds))
	for i, k := range kinds {
		for _, rate := range o.rates {
			r, cpu, err := load(k.scenario, rate, o.stepSecs)
			if err != nil {
				return missed, err
			}
			per := time.Duration(0)
			if r.OK > 0 {
				per = cpu / time.Duration(r.OK)
			}
			fmt.Printf("%-14s %7d %7d %7d %8.1f %8.1f %8.1f %8.0f%% %8.0f%% %10.1f\n", k.name, rate, r.OK, r.Failed,
				ms(r.P50), ms(r.P99), ms(r.Max), 100*float64(cpu)/float64(r.Wall), 100*float64(r.SIPpCPU)/float64(r.Wall), us(per))
			if r.Failed == 0 && r.OK > 0 {
				bests[i].busyRate, bests[i].busyPer = rate, per
			}
			if !r.Clean(o.p99) {
				bests[i].limit = fmt.Sprintf("at %d/s: %s", rate, capbench.Saturation(r, cpu, cores))
				break
			}
			bests[i].rate, bests[i].p99 = rate, r.P99
		}
	}
	fmt.Println()
	for i, k := range kinds {
		b := bests[i]
		limit := b.limit
		if limit == "" {
			limit = "every step was clean (raise -rates)"
		}
		fmt.Printf("%-14s highest clean rate %5d/s (p99 %.1f ms); first to saturate %s\n", k.name, b.rate, ms(b.p99), limit)
	}
	fmt.Println()

	// The transport floor (floor.go) at the CPU steps' rate and at each
	// answer's highest step without a failed call, each the same SIPp step
	// as the server's there.
	floor, err := startFloor(ctx)
	if err != nil {
		return missed, err
	}
	defer floor.stop()
	floorStep := func(scenario string, rate, secs int) (time.Duration, error) {
		r, cpu, err := loadOn(floor.addr, floor.cmd.Process.Pid, scenario, rate, secs)
		if err != nil {
			return 0, err
		}
		if r.OK == 0 || r.Failed > 0 {
			return 0, fmt.Errorf("floor step %s at %d/s: %d answered, %d failed (%v)\n%s", scenario, rate, r.OK, r.Failed, r.Err, r.Output)
		}
		return cpu / time.Duration(r.OK), nil
	}
	for _, k := range kinds {
		if _, err := floorStep(k.scenario, 50, 2); err != nil {
			return missed, fmt.Errorf("floor warm-up: %w", err)
		}
	}
	fmt.Printf("== transport floor: a responder that reads each INVITE and ACK through the same UDP layer and sends a canned 302,\n" +
		"   with no parsing, signing, verifying or recording (same SIPp steps; floor+raw bounds the ratio any server reaches here)\n")
	fmt.Printf("%-14s %7s %10s %10s %10s %12s %10s %14s  %s\n", "answer", "rate/s", "floor µs", "raw µs", "server µs", "floor+raw", "server", "server−floor", "target")
	for i, k := range kinds {
		type at struct {
			rate, secs int
			server     time.Duration
		}
		steps := []at{{o.cpuRate, o.cpuSecs, cpuRows[i].perCall}}
		if b := bests[i]; b.busyRate > 0 && b.busyRate != o.cpuRate {
			steps = append(steps, at{b.busyRate, o.stepSecs, b.busyPer})
		}
		for _, st := range steps {
			fl, err := floorStep(k.scenario, st.rate, st.secs)
			if err != nil {
				return missed, err
			}
			least := float64(fl+k.raw) / float64(k.raw)
			reach := "within reach of the floor"
			if least > k.target {
				reach = "out of reach here: floor+raw is over it"
			}
			fmt.Printf("%-14s %7d %10.1f %10.1f %10.1f %11.2f× %9.2f× %13.2f×  %.2f× %s\n", k.name, st.rate, us(fl), us(k.raw), us(st.server),
				least, float64(st.server)/float64(k.raw), float64(st.server-fl)/float64(k.raw), k.target, reach)
		}
	}
	floor.stop()
	fmt.Println()

	// The CPU counted must include recording every answer: a writer that
	// fell behind or stopped would look cheap.
	srv.stop()
	n, err := recorded(ctx, filepath.Join(tmp, "outcomes.db"))
	if err != nil {
		return missed, err
	}
	if n < answered {
		return missed, fmt.Errorf("the store holds %d outcomes for %d answered INVITEs", n, answered)
	}
	fmt.Printf("outcomes recorded: %d for %d answered INVITEs\n", n, answered)
	return missed, nil
}

// recorded counts the outcomes in the server's store.
func recorded(ctx context.Context, path string) (int, error) {
	st, err := outcome.Open(ctx, outcome.Options{Driver: "sqlite", Path: path})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	r, err := st.Report(ctx, outcome.Filter{})
	if err != nil {
		return 0, err
	}
	return r.Total, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// startServer runs `stirgate serve --config` with a lab PKI, the lab
// certificate endpoint (the x5u of its own signatures), a SQLite outcome
// store and one UDP SIP listener in auto mode, and waits until it answers
// OPTIONS.
func startServer(ctx context.Context, o options, dir string) (*server, error) {
	sipAddr, err := freeAddr("udp")
	if err != nil {
		return nil, err
	}
	labAddr, err := freeAddr("tcp")
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`
[log]
level = "warn"

[lab]
dir = "lab"
listen = %q

[policy]
default = "A"

[store]
path = "outcomes.db"

[[sip.listen]]
address = %q
transport = "udp"
mode = "auto"
`, labAddr, sipAddr)
	s := &server{sipAddr: sipAddr, cfgPath: filepath.Join(dir, "stirgate.toml"), log: filepath.Join(dir, "serve.log")}
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	s.cmd = exec.CommandContext(ctx, o.bin, "serve", "--config", s.cfgPath)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	if err := s.waitOptions(20 * time.Second); err != nil {
		s.stop()
		b, _ := os.ReadFile(s.log)
		return nil, fmt.Errorf("%w\nserve log:\n%s", err, b)
	}
	return s, nil
}

func (s *server) stop() { stopProcess(s.cmd) }

// stopProcess ends a child with SIGTERM, and SIGKILL after 10 s.
func stopProcess(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// waitOptions sends OPTIONS until the server answers 200.
func (s *server) waitOptions(limit time.Duration) error {
	if !awaitAnswer(s.sipAddr, "OPTIONS", "SIP/2.0 200", limit) {
		return errors.New("stirgate serve did not answer OPTIONS")
	}
	return nil
}

// awaitAnswer sends a method request to addr over UDP until an answer
// starting with want comes back, for at most limit: the child process
// listening there is ready.
func awaitAnswer(addr, method, want string, limit time.Duration) bool {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	req := method + " sip:ready@" + addr + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + c.LocalAddr().String() + ";rport;branch=z9hG4bK-ready\r\n" +
		"From: <sip:bench@127.0.0.1>;tag=1\r\nTo: <sip:ready@127.0.0.1>\r\nCall-ID: ready@bench\r\n" +
		"CSeq: 1 " + method + "\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	buf := make([]byte, 4096)
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); {
		_, _ = c.Write([]byte(req))
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := c.Read(buf); err == nil && strings.HasPrefix(string(buf[:n]), want) {
			return true
		}
	}
	return false
}

// labSigner signs as the server's lab does (same key, same x5u), so that
// the server verifies the tokens against its own lab certificate endpoint.
func labSigner(cfgPath string) (*core.Signer, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	if err := cfg.PrepareLab(time.Now(), nil); err != nil {
		return nil, err
	}
	return cfg.NewSigner(nil, nil)
}

func freeAddr(network string) (string, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.LocalAddr().String(), nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
