package kamtest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIPpBinary returns the SIPp executable to run.
func SIPpBinary() string {
	if b := os.Getenv("SIPP"); b != "" {
		return b
	}
	return DefaultSIPp
}

// SIPp exit codes (sipp(1), "EXIT STATUS").
const (
	SIPpAllSucceeded = 0   // every call succeeded
	SIPpSomeFailed   = 1   // at least one call failed
	SIPpInternalExit = 97  // exit on an internal command (e.g. <exec int_cmd="stop_now">)
	SIPpNoCalls      = 99  // normal exit without any call processed
	SIPpFatal        = 255 // fatal error (-1)
	SIPpFatalBind    = 254 // fatal error binding a socket (-2)
)

// SIPp describes one SIPp run. Zero fields take SIPp's defaults, except
// LocalIP (127.0.0.1) and LocalPort (a free port).
type SIPp struct {
	// Scenario is an XML scenario file (-sf); Builtin names an embedded one
	// (-sn uac, uas, ...). One of the two is required.
	Scenario string
	Builtin  string
	// Remote is the peer "host:port" (omit for a UAS).
	Remote string
	// LocalIP and LocalPort are -i and -p.
	LocalIP   string
	LocalPort int
	// Calls is -m: stop after this many calls.
	Calls int
	// Rate is -r, calls per second (per RatePeriod when set, -rp).
	Rate       float64
	RatePeriod time.Duration
	// Limit is -l, the maximum of simultaneous calls.
	Limit int
	// Inject is a CSV injection file (-inf).
	Inject string
	// Keys are -key NAME VALUE pairs, usable as [NAME] in the scenario.
	Keys map[string]string
	// Timeout is -timeout with -timeout_error: SIPp fails when it has not
	// finished in time (default 60s). The process is also killed 10s later.
	Timeout time.Duration
	// TraceMsg keeps every message sent and received (-trace_msg); keep it
	// off for load runs.
	TraceMsg bool
	// Args are extra arguments, verbatim.
	Args []string
	// Dir holds the stat, message and error files (default: a temporary
	// directory of the test).
	Dir string
	// Name prefixes the files in Dir (default "sipp").
	Name string
}

// Run is a started SIPp.
type Run struct {
	s       SIPp
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	files   runFiles
	// Port is the local port SIPp listens on.
	Port int
}

type runFiles struct{ stat, msg, err, out string }

// Start runs SIPp in the background. The test fails if SIPp cannot start;
// for a UAS, Start returns once its port is bound.
func (s SIPp) Start(t testing.TB) *Run {
	t.Helper()
	if s.Dir == "" {
		s.Dir = t.TempDir()
	}
	r, err := s.StartE()
	if err != nil {
		t.Fatalf("sipp: %v", err)
	}
	t.Cleanup(func() { r.Stop() })
	return r
}

// Run runs SIPp to completion and returns its result.
func (s SIPp) Run(t testing.TB) Result {
	t.Helper()
	return s.Start(t).Wait()
}

// StartE is Start without a test.
func (s SIPp) StartE() (*Run, error) {
	bin := SIPpBinary()
	if _, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("sipp binary %s not found (Debian package sip-tester): %w", bin, err)
	}
	if s.Scenario == "" && s.Builtin == "" {
		return nil, errors.New("kamtest: SIPp needs Scenario or Builtin")
	}
	var err error
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "kamtest-sipp"); err != nil {
			return nil, err
		}
	}
	if s.Name == "" {
		s.Name = "sipp"
	}
	if s.LocalIP == "" {
		s.LocalIP = "127.0.0.1"
	}
	if s.LocalPort == 0 {
		if s.LocalPort, err = FreeUDPPort(s.LocalIP); err != nil {
			return nil, err
		}
	}
	if s.Timeout <= 0 {
		s.Timeout = 60 * time.Second
	}
	base := filepath.Join(s.Dir, s.Name)
	r := &Run{s: s, done: make(chan struct{}), Port: s.LocalPort, files: runFiles{
		stat: base + "_stat.csv", msg: base + "_messages.log", err: base + "_errors.log", out: base + "_stdout.log",
	}}
	var args []string
	if s.Scenario != "" {
		sf, err := filepath.Abs(s.Scenario)
		if err != nil {
			return nil, err
		}
		args = append(args, "-sf", sf)
	} else {
		args = append(args, "-sn", s.Builtin)
	}
	if s.Remote != "" {
		args = append(args, s.Remote)
	}
	args = append(args,
		"-i", s.LocalIP, "-p", strconv.Itoa(s.LocalPort),
		"-nostdin",
		"-timeout", fmt.Sprintf("%ds", int(s.Timeout.Seconds()+0.5)), "-timeout_error",
		"-trace_stat", "-stf", r.files.stat, "-fd", "1",
		"-trace_err", "-error_file", r.files.err,
	)
	if s.Calls > 0 {
		args = append(args, "-m", strconv.Itoa(s.Calls))
	}
	if s.Rate > 0 {
		args = append(args, "-r", strconv.FormatFloat(s.Rate, 'f', -1, 64))
	}
	if s.RatePeriod > 0 {
		args = append(args, "-rp", fmt.Sprintf("%dms", s.RatePeriod.Milliseconds()))
	}
	if s.Limit > 0 {
		args = append(args, "-l", strconv.Itoa(s.Limit))
	}
	if s.Inject != "" {
		args = append(args, "-inf", s.Inject)
	}
	for k, v := range s.Keys {
		args = append(args, "-key", k, v)
	}
	if s.TraceMsg {
		args = append(args, "-trace_msg", "-message_file", r.files.msg)
	}
	args = append(args, s.Args...)

	out, err := os.Create(r.files.out)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	r.cmd = cmd
	go func() {
		r.waitErr = cmd.Wait()
		out.Close()
		close(r.done)
	}()
	// The hard stop, in case SIPp ignores its own -timeout.
	go func() {
		select {
		case <-r.done:
		case <-time.After(s.Timeout + 10*time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}()
	// Whatever the role, the run has started once its socket is bound.
	if err := waitBoundOrExit(s.LocalIP, s.LocalPort, r.done, 10*time.Second); err != nil {
		r.Stop()
		res := r.result()
		return nil, fmt.Errorf("%w (exit %d): %s", err, res.ExitCode, tail(res.Output, 20))
	}
	return r, nil
}

func waitBoundOrExit(host string, port int, done <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if udpBound(host, port) {
			return nil
		}
		select {
		case <-done:
			// A short UAC may be done already; its result says how it went.
			return nil
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sipp did not bind udp %s:%d within %s", host, port, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr is the "ip:port" SIPp listens on.
func (r *Run) Addr() string { return net.JoinHostPort(r.s.LocalIP, strconv.Itoa(r.Port)) }

// Wait waits for SIPp to finish and returns its result.
func (r *Run) Wait() Result {
	<-r.done
	return r.result()
}

// Stop ends SIPp (SIGUSR1 asks it to stop like the q key, then SIGKILL
// after 5s) and returns its result. Calling it on a finished run is
// harmless.
func (r *Run) Stop() Result {
	select {
	case <-r.done:
		return r.result()
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGUSR1)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
	return r.result()
}

// Done is closed when SIPp has exited.
func (r *Run) Done() <-chan struct{} { return r.done }

func (r *Run) result() Result {
	res := Result{ExitCode: -1, Dir: r.s.Dir}
	if r.cmd.ProcessState != nil {
		res.ExitCode = r.cmd.ProcessState.ExitCode()
	}
	if b, err := os.ReadFile(r.files.out); err == nil {
		res.Output = string(b)
	}
	if b, err := os.ReadFile(r.files.err); err == nil {
		res.Errors = string(b)
	}
	if b, err := os.ReadFile(r.files.msg); err == nil {
		res.Trace = string(b)
	}
	res.Stats, res.StatsErr = ReadStats(r.files.stat)
	return res
}

// Result is what a SIPp run left behind.
type Result struct {
	// ExitCode is SIPp's exit status (SIPpAllSucceeded, ...); -1 when it
	// was killed.
	ExitCode int
	Stats    Stats
	StatsErr error
	// Output is stdout and stderr; Errors the -trace_err file; Trace the
	// -trace_msg file (empty unless SIPp.TraceMsg).
	Output, Errors, Trace string
	Dir                   string
}

// Err is nil when SIPp exited 0 with no failed call.
func (r Result) Err() error {
	if r.ExitCode == SIPpAllSucceeded && r.Stats.Failed == 0 {
		return nil
	}
	return fmt.Errorf("sipp exit %d (%s), stats: %s; errors:\n%s\noutput:\n%s",
		r.ExitCode, ExitMeaning(r.ExitCode), r.Stats, tail(r.Errors, 30), tail(r.Output, 15))
}

// ExitMeaning describes a SIPp exit code.
func ExitMeaning(code int) string {
	switch code {
	case SIPpAllSucceeded:
		return "all calls succeeded"
	case SIPpSomeFailed:
		return "at least one call failed"
	case SIPpInternalExit:
		return "exit on internal command"
	case SIPpNoCalls:
		return "normal exit without calls processed"
	case SIPpFatal:
		return "fatal error"
	case SIPpFatalBind:
		return "fatal error binding a socket"
	case -1:
		return "killed"
	}
	return "unknown"
}

// Received returns the SIP messages SIPp received, in order (needs
// TraceMsg).
func (r Result) Received() []string { return traceMessages(r.Trace, "received") }

// Sent returns the SIP messages SIPp sent, in order (needs TraceMsg).
func (r Result) Sent() []string { return traceMessages(r.Trace, "sent") }

// traceMessages splits a -trace_msg file. Each entry starts with a dashed
// line carrying a timestamp, then "UDP message received [N] bytes :" (or
// "sent"), an empty line and the message.
func traceMessages(trace, dir string) []string {
	var out []string
	entries := strings.Split(trace, "\n----------------------------------------------- ")
	for _, e := range entries {
		_, rest, ok := strings.Cut(e, "\n")
		if !ok {
			continue
		}
		head, body, ok := strings.Cut(rest, "\n")
		if !ok || !strings.Contains(head, " message "+dir+" ") {
			continue
		}
		// The message keeps its CRLFs; the log adds one LF after it.
		body = strings.TrimLeft(body, "\n")
		out = append(out, strings.TrimRight(body, "\n")+"\n")
	}
	return out
}

// Header returns the values of header name (case-insensitive, no compact
// forms) in a SIP message, in order.
func Header(msg, name string) []string {
	var vals []string
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			vals = append(vals, strings.TrimSpace(v))
		}
	}
	return vals
}

// StartLine returns the first line of a SIP message.
func StartLine(msg string) string {
	l, _, _ := strings.Cut(msg, "\n")
	return strings.TrimRight(l, "\r")
}

// Stats is the last line of SIPp's -trace_stat file (cumulative counters).
type Stats struct {
	Created         int     // TotalCallCreated
	Successful      int     // SuccessfulCall(C)
	Failed          int     // FailedCall(C)
	Retransmissions int     // Retransmissions(C)
	OutOfCall       int     // OutOfCallMsgs(C)
	Dead            int     // DeadCallMsgs(C)
	CallRate        float64 // CallRate(C), calls per second over the run
	// ResponseTime is the mean of response time 1 (the time between the
	// scenario's first request and the response marked rtd="1"; for the
	// scenarios in kamailio/sipp: INVITE to final response).
	ResponseTime time.Duration
	Raw          map[string]string
}

func (s Stats) String() string {
	str := fmt.Sprintf("created=%d successful=%d failed=%d retrans=%d rate=%.1f/s rtt=%s",
		s.Created, s.Successful, s.Failed, s.Retransmissions, s.CallRate, s.ResponseTime)
	// Which kind of failure, as SIPp counts them (FailedTimeoutOnRecv, ...).
	var kinds []string
	for k, v := range s.Raw {
		if strings.HasPrefix(k, "Failed") && strings.HasSuffix(k, "(C)") && k != "FailedCall(C)" && v != "" && v != "0" {
			kinds = append(kinds, strings.TrimSuffix(k, "(C)")+"="+v)
		}
	}
	sort.Strings(kinds)
	if len(kinds) > 0 {
		str += " [" + strings.Join(kinds, " ") + "]"
	}
	return str
}

// ReadStats parses a SIPp -trace_stat CSV file.
func ReadStats(path string) (Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return Stats{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	var header, last string
	for sc.Scan() {
		if header == "" {
			header = sc.Text()
			continue
		}
		if strings.TrimSpace(sc.Text()) != "" {
			last = sc.Text()
		}
	}
	if err := sc.Err(); err != nil {
		return Stats{}, err
	}
	if last == "" {
		return Stats{}, fmt.Errorf("%s: no statistics line", path)
	}
	return parseStats(header, last)
}

func parseStats(header, line string) (Stats, error) {
	keys := strings.Split(header, ";")
	vals := strings.Split(line, ";")
	s := Stats{Raw: map[string]string{}}
	for i, k := range keys {
		if i < len(vals) {
			s.Raw[k] = vals[i]
		}
	}
	atoi := func(k string) int {
		n, _ := strconv.Atoi(s.Raw[k])
		return n
	}
	if _, ok := s.Raw["SuccessfulCall(C)"]; !ok {
		return s, errors.New("statistics without SuccessfulCall(C)")
	}
	s.Created = atoi("TotalCallCreated")
	s.Successful = atoi("SuccessfulCall(C)")
	s.Failed = atoi("FailedCall(C)")
	s.Retransmissions = atoi("Retransmissions(C)")
	s.OutOfCall = atoi("OutOfCallMsgs(C)")
	s.Dead = atoi("DeadCallMsgs(C)")
	s.CallRate, _ = strconv.ParseFloat(s.Raw["CallRate(C)"], 64)
	s.ResponseTime = parseSIPpDuration(s.Raw["ResponseTime1(C)"])
	return s, nil
}

// parseSIPpDuration reads "HH:MM:SS:uuuuuu".
func parseSIPpDuration(v string) time.Duration {
	p := strings.Split(v, ":")
	if len(p) != 4 {
		return 0
	}
	var n [4]int64
	for i, s := range p {
		n[i], _ = strconv.ParseInt(s, 10, 64)
	}
	return time.Duration(n[0])*time.Hour + time.Duration(n[1])*time.Minute +
		time.Duration(n[2])*time.Second + time.Duration(n[3])*time.Microsecond
}
