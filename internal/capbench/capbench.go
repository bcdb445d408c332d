// Package capbench holds what the capacity benchmarks share (`make
// bench-capacity`): process CPU time read from /proc, raw crypto/ecdsa
// P-256 CPU time per operation measured the same way, and fixed-rate SIPp
// runs with their latency percentiles and SIPp's own CPU time.
//
// CPU time, not wall time, is what these benchmarks compare: the machines
// they run on are shared, so rates and latencies are noisy, while the CPU
// a process spends per answered INVITE, beside the CPU the same machine
// spends per raw signature in the same run, is a ratio that holds.
package capbench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// which Linux fixes at 100 for every architecture's user ABI.
const clockTick = 10 * time.Millisecond

// ProcCPU returns utime+stime of process pid, all its threads, from
// /proc/PID/stat (fields 14 and 15).
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(u+s) * clockTick, nil
}

// ProcsCPU sums ProcCPU over pids.
func ProcsCPU(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, p := range pids {
		c, err := ProcCPU(p)
		if err != nil {
			return 0, err
		}
		total += c
	}
	return total, nil
}

// SettledCPU waits until the CPU time of pids stops growing (two reads
// 200 ms apart agree, for at most 5 s) and returns it: work queued during
// a run (outcome records, log lines) is counted with the run.
func SettledCPU(pids []int) (time.Duration, error) {
	last, err := ProcsCPU(pids)
	if err != nil {
		return 0, err
	}
	for range 25 {
		time.Sleep(200 * time.Millisecond)
		c, err := ProcsCPU(pids)
		if err != nil {
			return 0, err
		}
		if c == last {
			break
		}
		last = c
	}
	return last, nil
}

// SelfCPU is this process's user+system CPU time (getrusage), the
// same quantity ProcCPU reads for another process, at a finer grain.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err) // RUSAGE_SELF cannot fail on Linux
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// RawECDSA is the CPU time per operation of raw crypto/ecdsa P-256:
// SHA-256 of a PASSporT-sized signing input plus SignASN1, and SHA-256
// plus VerifyASN1 - the floor under any STIR/SHAKEN signing or
// verification.
type RawECDSA struct {
	Sign, Verify time.Duration
	SignOps      int
	VerifyOps    int
}

// MeasureRawECDSA runs each operation for about d on one goroutine and
// divides the process CPU time spent (garbage collection included, as for
// the server) by the operations done.
func MeasureRawECDSA(d time.Duration) (RawECDSA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return RawECDSA{}, err
	}
	// The size of a SHAKEN signing input: header and claims, base64url.
	input := []byte(strings.Repeat("eyJhbGciOiJFUzI1NiIsInBwdCI6InNoYWtlbiJ9", 8))
	digest := sha256.Sum256(input)
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return RawECDSA{}, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	measure := func(op func() error) (time.Duration, int, error) {
		runtime.GC()
		start, c0 := time.Now(), SelfCPU()
		n := 0
		for time.Since(start) < d {
			for range 100 {
				if err := op(); err != nil {
					return 0, 0, err
				}
			}
			n += 100
		}
		return (SelfCPU() - c0) / time.Duration(n), n, nil
	}
	var r RawECDSA
	if r.Sign, r.SignOps, err = measure(func() error {
		dg := sha256.Sum256(input)
		_, err := ecdsa.SignASN1(rand.Reader, key, dg[:])
		return err
	}); err != nil {
		return r, err
	}
	if r.Verify, r.VerifyOps, err = measure(func() error {
		dg := sha256.Sum256(input)
		if !ecdsa.VerifyASN1(&key.PublicKey, dg[:], sig) {
			return errors.New("raw ECDSA verification failed")
		}
		return nil
	}); err != nil {
		return r, err
	}
	return r, nil
}

// Load is one fixed-rate SIPp client run (UDP).
type Load struct {
	// Scenario is the XML scenario; it is copied into Dir, where SIPp
	// writes its files.
	Scenario string
	Dir      string
	Target   string // host:port
	LocalIP  string // default 127.0.0.1
	Rate     int    // calls per second
	Seconds  int
	Keys     map[string]string
	Args     []string // extra, verbatim
}

// LoadResult is what one Load measured.
type LoadResult struct {
	Rate, Calls   int
	OK, Failed    int
	P50, P99, Max time.Duration // response time 1 (start_rtd to rtd)
	Wall          time.Duration
	// SIPpCPU is SIPp's own user+system CPU time (from its rusage).
	SIPpCPU time.Duration
	Err     error // SIPp's exit, when not 0
	Output  string
}

// Run runs l to completion. It returns an error only when SIPp could not
// run or left no statistics; failed calls are in the result.
func (l Load) Run(ctx context.Context) (LoadResult, error) {
	res := LoadResult{Rate: l.Rate, Calls: l.Rate * l.Seconds}
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		return res, fmt.Errorf("sipp is not installed (make test-deps installs it): %w", err)
	}
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return res, err
	}
	scen, err := os.ReadFile(l.Scenario)
	if err != nil {
		return res, err
	}
	// SIPp writes its rtt file beside the scenario: keep both in Dir.
	name := strings.TrimSuffix(filepath.Base(l.Scenario), ".xml")
	if err := os.WriteFile(filepath.Join(l.Dir, name+".xml"), scen, 0o644); err != nil {
		return res, err
	}
	ip := l.LocalIP
	if ip == "" {
		ip = "127.0.0.1"
	}
	port, err := freeUDPPort(ip)
	if err != nil {
		return res, err
	}
	args := []string{"-sf", name + ".xml", "-i", ip, "-p", strconv.Itoa(port), "-t", "u1",
		"-nostdin", "-buff_size", "4194304", "-r", strconv.Itoa(l.Rate), "-m", strconv.Itoa(res.Calls),
		"-recv_timeout", "2000", "-timeout", strconv.Itoa(l.Seconds+30) + "s",
		"-max_recv_loops", "10000", "-max_sched_loops", "10000",
		"-trace_rtt", "-rtt_freq", "1", "-trace_stat", "-stf", "stat.csv", "-fd", "1",
		"-trace_err", "-error_file", "errors.log"}
	for k, v := range l.Keys {
		args = append(args, "-key", k, v)
	}
	args = append(args, l.Args...)
	args = append(args, l.Target)
	cctx, cancel := context.WithTimeout(ctx, time.Duration(l.Seconds+60)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, sipp, args...)
	cmd.Dir = l.Dir
	start := time.Now()
	out, runErr := cmd.CombinedOutput()
	res.Wall = time.Since(start)
	res.Output = string(out)
	res.Err = runErr
	if ps := cmd.ProcessState; ps != nil {
		res.SIPpCPU = ps.UserTime() + ps.SystemTime()
	}
	res.OK, res.Failed, err = StatCounts(filepath.Join(l.Dir, "stat.csv"))
	if err != nil || res.OK+res.Failed == 0 {
		e, _ := os.ReadFile(filepath.Join(l.Dir, "errors.log"))
		return res, fmt.Errorf("sipp left no statistics (%v, %v)\n%s\n%s", err, runErr, tail(string(out), 2000), tail(string(e), 2000))
	}
	rtts, err := readRTT(filepath.Join(l.Dir, name+"_*_rtt.csv"))
	if err != nil {
		return res, err
	}
	if n := len(rtts); n > 0 {
		res.P50, res.P99, res.Max = rtts[n/2], rtts[min(n-1, n*99/100)], rtts[n-1]
	}
	return res, nil
}

// readRTT reads every response time SIPp's -trace_rtt wrote (ms, one a
// line after a header) and sorts them.
func readRTT(glob string) ([]time.Duration, error) {
	matches, _ := filepath.Glob(glob)
	if len(matches) == 0 {
		return nil, fmt.Errorf("no SIPp rtt file %s", glob)
	}
	var out []time.Duration
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		lines := strings.Split(string(b), "\n")
		for _, ln := range lines[1:] {
			f := strings.Split(ln, ";")
			if len(f) < 2 {
				continue
			}
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				out = append(out, time.Duration(v*float64(time.Millisecond)))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// StatCounts reads the cumulative successful and failed calls from the
// last line of a SIPp statistics file (-trace_stat).
func StatCounts(path string) (ok, failed int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return 0, 0, fmt.Errorf("%s: no statistics line", path)
	}
	head := strings.Split(lines[0], ";")
	last := strings.Split(lines[len(lines)-1], ";")
	for i, h := range head {
		if i >= len(last) {
			break
		}
		switch h {
		case "SuccessfulCall(C)":
			ok, _ = strconv.Atoi(last[i])
		case "FailedCall(C)":
			failed, _ = strconv.Atoi(last[i])
		}
	}
	return ok, failed, nil
}

// freeUDPPort is a UDP port of ip that nothing is bound to.
func freeUDPPort(ip string) (int, error) {
	c, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Clean is a step that met the latency target: every call answered, none
// failed, p99 under limit.
func (r LoadResult) Clean(limit time.Duration) bool {
	return r.Err == nil && r.Failed == 0 && r.OK == r.Calls && r.P99 < limit
}

// Saturation names what ran out at a step: SIPp is one thread, so it is
// saturated near one core; the server may use every core.
func Saturation(r LoadResult, serverCPU time.Duration, cores int) string {
	sipp := float64(r.SIPpCPU) / float64(r.Wall)
	srv := float64(serverCPU) / float64(r.Wall)
	switch {
	case sipp >= 0.85:
		return fmt.Sprintf("SIPp (%.0f%% of its one core; server %.0f%% of %d)", sipp*100, srv*100, cores)
	case srv >= 0.85*float64(cores):
		return fmt.Sprintf("server (%.0f%% of %d cores; SIPp %.0f%%)", srv*100, cores, sipp*100)
	case sipp+srv >= 0.85*float64(cores):
		return fmt.Sprintf("the cores they share (server %.0f%% + SIPp %.0f%% of %d)", srv*100, sipp*100, cores)
	}
	return fmt.Sprintf("neither by CPU (server %.0f%%, SIPp %.0f%% of %d cores): other load on the host or scheduling latency", srv*100, sipp*100, cores)
}
