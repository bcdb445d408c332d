// Package memcheck runs a program under valgrind's memcheck and reads its
// report, for the memory checks of the C surfaces (libstirgate's C test,
// the libsecsipid drop-in's C test, the Lua module).
//
// Two things make those checks trustworthy on every host of our machine
// kind, Intel or AMD:
//
//   - Valgrind 3.19 (Debian 12's) advertises RDTSCP in the CPUID it
//     synthesises for the guest, but can only decode the instruction when
//     the host CPU has it. Go's runtime.cputicks uses RDTSCP whenever CPUID
//     says so, so on a host without it (seen on AMD EPYC virtual machines)
//     the program dies with SIGILL in runtime.cputicks. Go's own
//     GODEBUG=cpu.rdtscp=off makes the runtime use LFENCE+RDTSC instead,
//     which every x86-64 valgrind decodes. It is set for every run, whatever
//     the host: nothing here looks at the CPU.
//   - A clean run proves little unless the same run fails on a planted
//     defect. Caught checks a control run: the program must have run to its
//     own closing line (so valgrind did not die first), valgrind must have
//     counted errors, and the report must name the expected kind of defect
//     at the expected call site. Matching the bare words "definitely lost"
//     is not enough: valgrind prints "definitely lost: 0 bytes" too.
package memcheck

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Env is what every program under valgrind runs with (see the package
// comment). asyncpreemptoff keeps Go's preemption signals from landing in
// code valgrind is translating; it changes scheduling only.
var Env = []string{"GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off"}

// ExitCode is the status valgrind exits with when it found errors.
const ExitCode = 99

// Options configure a run.
type Options struct {
	Valgrind     string   // path; "" finds valgrind on PATH
	Suppressions []string // suppression files (the Go runtime's)
	Env          []string // added to the environment, after Env
	Dir          string
}

// Command builds the valgrind command line for prog and args. Leaks of
// kind "definite" are errors; "possibly lost" blocks are the Go runtime's
// thread stacks and are not shown.
func Command(ctx context.Context, o Options, prog string, args ...string) (*exec.Cmd, error) {
	vg := o.Valgrind
	if vg == "" {
		p, err := exec.LookPath("valgrind")
		if err != nil {
			return nil, fmt.Errorf("valgrind not installed (make test-deps installs it): %w", err)
		}
		vg = p
	}
	argv := []string{"--leak-check=full", "--errors-for-leak-kinds=definite", "--show-possibly-lost=no",
		"--error-exitcode=" + strconv.Itoa(ExitCode), "--num-callers=40"}
	for _, s := range o.Suppressions {
		argv = append(argv, "--suppressions="+s)
	}
	argv = append(argv, prog)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, vg, argv...)
	cmd.Env = append(append(os.Environ(), Env...), o.Env...)
	cmd.Dir = o.Dir
	return cmd, nil
}

// Defect is a kind of memory error a control run plants.
type Defect string

// The planted defects and the words valgrind reports each with.
const (
	Leak         Defect = "leak"
	DoubleFree   Defect = "double-free"
	UseAfterFree Defect = "use-after-free"
)

var defectText = map[Defect]*regexp.Regexp{
	Leak:         regexp.MustCompile(`(?m)^==\d+== [\d,]+ bytes in \d+ blocks are definitely lost in loss record`),
	DoubleFree:   regexp.MustCompile(`(?m)^==\d+== Invalid free\(\) / delete / delete\[\] / realloc\(\)`),
	UseAfterFree: regexp.MustCompile(`(?m)^==\d+== Invalid read of size \d+`),
}

// Defects lists every planted defect, for tables of control runs.
var Defects = []Defect{Leak, DoubleFree, UseAfterFree}

var (
	errorSummary = regexp.MustCompile(`(?m)^==\d+== ERROR SUMMARY: ([\d,]+) errors`)
	fatalSignal  = regexp.MustCompile(`(?m)^==\d+== Process terminating with default action of signal`)
	unhandled    = regexp.MustCompile(`vex amd64->IR: unhandled instruction`)
)

// Report is what one valgrind run said.
type Report struct {
	Output string // everything the program and valgrind printed
	Exit   int    // exit status (-1: killed by a signal)
	Errors int    // valgrind's ERROR SUMMARY count; -1 when it printed none
}

// Run runs cmd (from Command) and reads its report. The error is non-nil
// only when the command could not be run at all.
func Run(cmd *exec.Cmd) (Report, error) {
	out, err := cmd.CombinedOutput()
	exit := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			return Report{Output: string(out), Errors: -1}, err
		}
		exit = ee.ExitCode()
	}
	return parse(string(out), exit), nil
}

// parse reads valgrind's last ERROR SUMMARY from a run's output.
func parse(out string, exit int) Report {
	r := Report{Output: out, Exit: exit, Errors: -1}
	if m := errorSummary.FindAllStringSubmatch(out, -1); m != nil {
		r.Errors, _ = strconv.Atoi(strings.ReplaceAll(m[len(m)-1][1], ",", ""))
	}
	return r
}

// ranToEnd reports whether the program itself finished: valgrind printed
// its summary, the process did not die of a signal, and the program's own
// closing line (done) is there.
func (r Report) ranToEnd(done *regexp.Regexp) error {
	switch {
	case unhandled.MatchString(r.Output):
		return fmt.Errorf("valgrind could not decode an instruction of the program")
	case fatalSignal.MatchString(r.Output):
		return fmt.Errorf("the program died of a signal under valgrind")
	case r.Errors < 0:
		return fmt.Errorf("valgrind printed no ERROR SUMMARY: it did not finish")
	case !done.MatchString(r.Output):
		return fmt.Errorf("the program did not reach its closing line %q", done)
	}
	return nil
}

// Clean checks a run that must be free of errors.
func (r Report) Clean(done *regexp.Regexp) error {
	if err := r.ranToEnd(done); err != nil {
		return err
	}
	if r.Errors != 0 || r.Exit != 0 {
		return fmt.Errorf("valgrind found %d errors (exit %d)", r.Errors, r.Exit)
	}
	return nil
}

// Caught checks a control run with a planted defect: the program ran to
// its end, valgrind failed the run, and the report names the defect at
// one of sites (function or file:line fragments: the planting code, or,
// for a leak, the library's allocation site, since valgrind cannot always
// unwind through Go frames back to the C caller).
func (r Report) Caught(d Defect, done *regexp.Regexp, sites ...string) error {
	if err := r.ranToEnd(done); err != nil {
		return err
	}
	if r.Exit != ExitCode || r.Errors < 1 {
		return fmt.Errorf("valgrind did not fail the run (exit %d, %d errors)", r.Exit, r.Errors)
	}
	re, ok := defectText[d]
	if !ok {
		return fmt.Errorf("unknown defect %q", d)
	}
	loc := re.FindStringIndex(r.Output)
	if loc == nil {
		return fmt.Errorf("no %s reported", d)
	}
	// The site must appear in the stack of that report: the lines after
	// its heading, up to the next blank report line.
	stack := r.Output[loc[1]:]
	if end := regexp.MustCompile(`(?m)^==\d+== $`).FindStringIndex(stack); end != nil {
		stack = stack[:end[0]]
	}
	for _, site := range sites {
		if strings.Contains(stack, site) {
			return nil
		}
	}
	return fmt.Errorf("%s reported, but not at %s:\n%s", d, strings.Join(sites, " or "), stack)
}

// Tail returns the last n lines of s, for failure messages.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
