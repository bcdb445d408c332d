// Package kamtest runs Debian's Kamailio and SIPp on loopback for
// integration tests: start Kamailio from a config on a free port, wait until
// it answers, read its log, inspect its worker processes, stop it; run SIPp
// scenarios and read their exit codes, statistics and message traces.
//
// A missing peer is a test failure, never a skip: `make test` installs the
// Debian packages (kamailio, kamailio-lua-modules, sip-tester) first.
//
// Configs started with Start must answer an OPTIONS request addressed to
// themselves with any SIP response (most do: `if is_method("OPTIONS") &&
// uri==myself { sl_send_reply("200", "Keepalive"); exit; }`); that is how
// Start knows a worker is up. Set Options.Ready to wait differently.
package kamtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Paths of the Debian packages. The KAMAILIO and SIPP environment variables
// override the binaries.
const (
	DefaultKamailio   = "/usr/sbin/kamailio"
	DefaultModulesDir = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
	DefaultSIPp       = "sipp"
)

// KamailioBinary returns the Kamailio executable to run.
func KamailioBinary() string {
	if b := os.Getenv("KAMAILIO"); b != "" {
		return b
	}
	return DefaultKamailio
}

// Options configures one Kamailio instance. The zero value (plus Config)
// runs 2 children on a free UDP port of 127.0.0.1.
type Options struct {
	// Config is the kamailio.cfg to run. Required.
	Config string
	// Host and Port are the UDP listen address (default 127.0.0.1 and a
	// free port). It is passed as `-l udp:HOST:PORT`, so the config should
	// not have its own listen= lines (or must list the same address).
	Host string
	Port int
	// Listen adds further -l addresses verbatim (e.g. "udp:127.0.0.2:5060").
	Listen []string
	// Children is -n, the number of UDP worker processes (default 2).
	Children int
	// Defines are preprocessor defines, each passed as -A: "WITH_X" or
	// `NAME="string value"` or "NAME=123".
	Defines []string
	// Env is added to the environment (e.g. "LD_LIBRARY_PATH=...").
	Env []string
	// ShmMB and PkgMB are -m and -M (default 64 and 8).
	ShmMB, PkgMB int
	// Debug, when non-zero, is passed as --debug.
	Debug int
	// Dir is the working and runtime directory (default: a new temporary
	// directory of the test).
	Dir string
	// ReadyTimeout bounds the wait for Ready (default 15s).
	ReadyTimeout time.Duration
	// Ready reports whether the instance is up. Default: an OPTIONS
	// request to Addr gets any SIP response.
	Ready func(ctx context.Context, k *Kamailio) error
}

// Kamailio is a running instance.
type Kamailio struct {
	Host string
	Port int
	Addr string // "HOST:PORT"
	Dir  string
	// PID is the main process; workers are its children.
	PID int

	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	stopMu  sync.Mutex
	stopped bool
}

// Start runs Kamailio for the test and stops it when the test ends. It
// fails the test when Kamailio is missing, rejects the config or does not
// become ready.
func Start(t testing.TB, o Options) *Kamailio {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	k, err := StartContext(context.Background(), o)
	if k != nil {
		t.Cleanup(func() {
			if err := k.Stop(); err != nil {
				t.Errorf("kamailio stop: %v", err)
			}
			if t.Failed() {
				t.Logf("kamailio log (%s):\n%s", k.logPath, tail(k.Log(), 200))
			}
		})
	}
	if err != nil {
		t.Fatalf("kamailio: %v", err)
	}
	return k
}

// StartContext runs Kamailio and waits until it is ready. On a readiness
// failure the instance is returned too (already stopped) so that its log
// can be read.
func StartContext(ctx context.Context, o Options) (*Kamailio, error) {
	if o.Config == "" {
		return nil, errors.New("kamtest: Options.Config is required")
	}
	bin := KamailioBinary()
	if _, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("kamailio binary %s not found (Debian package kamailio): %w", bin, err)
	}
	cfg, err := filepath.Abs(o.Config)
	if err != nil {
		return nil, err
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		if o.Port, err = FreeUDPPort(o.Host); err != nil {
			return nil, err
		}
	}
	if o.Children <= 0 {
		o.Children = 2
	}
	if o.ShmMB <= 0 {
		o.ShmMB = 64
	}
	if o.PkgMB <= 0 {
		o.PkgMB = 8
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 15 * time.Second
	}
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "kamtest"); err != nil {
			return nil, err
		}
	}
	if o.Ready == nil {
		o.Ready = ProbeOPTIONS
	}
	k := &Kamailio{
		Host:    o.Host,
		Port:    o.Port,
		Addr:    net.JoinHostPort(o.Host, strconv.Itoa(o.Port)),
		Dir:     o.Dir,
		logPath: filepath.Join(o.Dir, "kamailio.log"),
		done:    make(chan struct{}),
	}
	args := []string{
		"-f", cfg,
		"-DD", "-E",
		"-l", fmt.Sprintf("udp:%s", k.Addr),
		"-n", strconv.Itoa(o.Children),
		"-m", strconv.Itoa(o.ShmMB),
		"-M", strconv.Itoa(o.PkgMB),
		"-Y", o.Dir,
		"-w", o.Dir,
		"-a", "no",
	}
	for _, l := range o.Listen {
		args = append(args, "-l", l)
	}
	for _, d := range o.Defines {
		args = append(args, "-A", d)
	}
	if o.Debug != 0 {
		args = append(args, "--debug="+strconv.Itoa(o.Debug))
	}
	logf, err := os.Create(k.logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Its own process group, so that Stop can reach every worker even if
	// the main process is gone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	k.cmd = cmd
	k.PID = cmd.Process.Pid
	go func() {
		k.waitErr = cmd.Wait()
		logf.Close()
		close(k.done)
	}()

	rctx, cancel := context.WithTimeout(ctx, o.ReadyTimeout)
	defer cancel()
	readyErr := make(chan error, 1)
	go func() { readyErr <- o.Ready(rctx, k) }()
	select {
	case err := <-readyErr:
		if err != nil {
			_ = k.Stop()
			return k, fmt.Errorf("not ready on %s: %w\n%s", k.Addr, err, tail(k.Log(), 40))
		}
	case <-k.done:
		cancel()
		return k, fmt.Errorf("exited during start (%v):\n%s", k.waitErr, tail(k.Log(), 60))
	}
	return k, nil
}

// ProbeOPTIONS sends OPTIONS requests to k.Addr until one gets a SIP
// response or ctx ends.
func ProbeOPTIONS(ctx context.Context, k *Kamailio) error {
	var last error
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			if last == nil {
				last = err
			}
			return last
		}
		select {
		case <-k.done:
			return errors.New("kamailio exited")
		default:
		}
		code, err := SendOPTIONS(k.Addr, 300*time.Millisecond)
		if err == nil && code > 0 {
			return nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
}

// SendOPTIONS sends one OPTIONS request over UDP from a new loopback socket
// and returns the status code of the first response.
func SendOPTIONS(addr string, timeout time.Duration) (int, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return 0, err
	}
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	la := c.LocalAddr().(*net.UDPAddr)
	branch := fmt.Sprintf("z9hG4bKkamtest%d", time.Now().UnixNano())
	msg := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=%s;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:kamtest@%s>;tag=%d\r\n"+
		"To: <sip:%s>\r\n"+
		"Call-ID: kamtest-%d@%s\r\n"+
		"CSeq: 1 OPTIONS\r\n"+
		"Content-Length: 0\r\n\r\n",
		addr, la.String(), branch, la.IP, time.Now().UnixNano(), addr, time.Now().UnixNano(), la.IP)
	if _, err := c.Write([]byte(msg)); err != nil {
		return 0, err
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(buf[:n], []byte("\r\n"))
	f := strings.Fields(string(line))
	if len(f) < 2 || !strings.HasPrefix(f[0], "SIP/2.0") {
		return 0, fmt.Errorf("not a SIP response: %q", line)
	}
	return strconv.Atoi(f[1])
}

// Stop terminates Kamailio (SIGTERM, then SIGKILL to its process group
// after 90 s) and waits for it. The grace is generous: Kamailio's main
// process waits for every worker, and on a loaded machine a worker can be
// slow to get to its signal. It is also longer than Kamailio's own kill
// timeout (ser_kill_timeout, 60 s: main.c sig_alarm_kill), after which the
// main process SIGKILLs its whole process group, itself included: a child stalled
// in its SIGTERM handler (it logs there, which is not async-signal-safe;
// seen once in a full test run) is Kamailio's shutdown path to finish, not
// a failure of the calls under test. Only a Kamailio that does not exit
// even then is an error. Calling it again is harmless.
func (k *Kamailio) Stop() error {
	k.stopMu.Lock()
	defer k.stopMu.Unlock()
	if k.stopped {
		return nil
	}
	k.stopped = true
	select {
	case <-k.done:
		// Already gone: make sure no worker outlives it.
		_ = syscall.Kill(-k.PID, syscall.SIGKILL)
		return nil
	default:
	}
	_ = syscall.Kill(k.PID, syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(90 * time.Second):
		_ = syscall.Kill(-k.PID, syscall.SIGKILL)
		<-k.done
		return errors.New("did not stop within 90 s of SIGTERM, past its own kill timeout; killed")
	}
	_ = syscall.Kill(-k.PID, syscall.SIGKILL)
	return nil
}

// Exited is closed when the main process has exited.
func (k *Kamailio) Exited() <-chan struct{} { return k.done }

// Alive reports whether the main process is still running.
func (k *Kamailio) Alive() bool {
	select {
	case <-k.done:
		return false
	default:
		return true
	}
}

// LogPath is the file holding Kamailio's stderr (every process logs there).
func (k *Kamailio) LogPath() string { return k.logPath }

// Log returns the log so far.
func (k *Kamailio) Log() string {
	b, _ := os.ReadFile(k.logPath)
	return string(b)
}

// WaitLog waits until the log matches re.
func (k *Kamailio) WaitLog(re *regexp.Regexp, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if re.MatchString(k.Log()) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("log did not match %s within %s", re, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// crashPatterns are what Kamailio's main process logs when a child dies.
// Kamailio never restarts a worker: a dead child takes the instance down.
var crashPatterns = regexp.MustCompile(`(?i)(child process \d+ exited by a signal|core dumped|exited by a signal|segmentation fault|fatal error: |panic: |SIGSEGV)`)

// Healthy reports an error when the main process has exited or the log
// shows a dead child, a signal, a Go panic or a fatal runtime error.
func (k *Kamailio) Healthy() error {
	if !k.Alive() {
		return fmt.Errorf("kamailio exited: %v", k.waitErr)
	}
	if m := crashPatterns.FindString(k.Log()); m != "" {
		return fmt.Errorf("kamailio log shows a crash: %q", m)
	}
	return nil
}

// Process is one Kamailio process.
type Process struct {
	PID   int
	PPID  int
	RSSKB int64 // resident set size (VmRSS), KiB
	// AnonKB is the private part of RSS (RssAnon): heaps, Go's included.
	// ShmKB is shared memory touched (RssShmem): Kamailio's shm, which
	// grows as a worker touches more of it and is not the worker's own.
	AnonKB, ShmKB int64
}

// Maps returns the process's /proc/PID/maps.
func (p Process) Maps() (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", p.PID))
	return string(b), err
}

// HasMapping reports whether a file whose path contains sub is mapped into
// the process (e.g. "libstirgate.so").
func (p Process) HasMapping(sub string) bool {
	m, err := p.Maps()
	return err == nil && strings.Contains(m, sub)
}

// Main returns the main process.
func (k *Kamailio) Main() (Process, error) { return readProcess(k.PID) }

// Children returns the processes forked by the main process: UDP workers,
// timers and helpers, in PID order.
func (k *Kamailio) Children() ([]Process, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := readProcess(pid)
		if err != nil || p.PPID != k.PID {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

func readProcess(pid int) (Process, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Process{}, err
	}
	defer f.Close()
	p := Process{PID: pid}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "PPid":
			p.PPID, _ = strconv.Atoi(v)
		case "VmRSS":
			p.RSSKB, _ = strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
		case "RssAnon":
			p.AnonKB, _ = strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
		case "RssShmem":
			p.ShmKB, _ = strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
		}
	}
	return p, sc.Err()
}

// FreeUDPPort returns a UDP port on host that was free a moment ago.
func FreeUDPPort(host string) (int, error) {
	c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// WaitUDP waits until some process has bound host:port for UDP.
func WaitUDP(host string, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if udpBound(host, port) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing bound udp %s:%d within %s", host, port, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// udpBound reads /proc/net/udp, whose local_address column is the IPv4
// address in host byte order hex, a colon and the port in hex.
func udpBound(host string, port int) bool {
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return false
	}
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], port)
	any := fmt.Sprintf("00000000:%04X", port)
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 1 && (f[1] == want || f[1] == any) {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
