package memcheck

import (
	"regexp"
	"strings"
	"testing"
)

var done = regexp.MustCompile(`prog: \d+ checks, 0 failures`)

// Reports as valgrind 3.19 prints them; the first is the one seen on an AMD
// host before GODEBUG=cpu.rdtscp=off: it must fail both the clean check
// and every control, since the program never ran.
const (
	sigill = `==1== Process terminating with default action of signal 4 (SIGILL)
==1==  Illegal opcode at address 0x4992669
==1==    at 0x4992669: runtime.cputicks.abi0 (asm_amd64.s:1261)
==1== 
==1== LEAK SUMMARY:
==1==    definitely lost: 0 bytes in 0 blocks
==1== ERROR SUMMARY: 0 errors from 0 contexts (suppressed: 0 from 0)
`
	clean = `prog: 12 checks, 0 failures
==1== ERROR SUMMARY: 0 errors from 0 contexts (suppressed: 10 from 2)
`
	leak = `prog: 12 checks, 0 failures
==1== 64 bytes in 1 blocks are definitely lost in loss record 3 of 4
==1==    at 0x48417B4: malloc (in vgpreload_memcheck-amd64-linux.so)
==1==    by 0x10A1B2: plant_defect (prog.c:40)
==1== 
==1== LEAK SUMMARY:
==1==    definitely lost: 64 bytes in 1 blocks
==1== ERROR SUMMARY: 1 errors from 1 contexts (suppressed: 10 from 2)
`
	doubleFree = `==1== Invalid free() / delete / delete[] / realloc()
==1==    at 0x484417B: free (in vgpreload_memcheck-amd64-linux.so)
==1==    by 0x10A1C0: plant_defect (prog.c:44)
==1== 
prog: 12 checks, 0 failures
==1== ERROR SUMMARY: 1 errors from 1 contexts (suppressed: 10 from 2)
`
	// A leak elsewhere: the right kind, the wrong place.
	otherLeak = `prog: 12 checks, 0 failures
==1== 64 bytes in 1 blocks are definitely lost in loss record 3 of 4
==1==    at 0x48417B4: malloc (in vgpreload_memcheck-amd64-linux.so)
==1==    by 0x10A1B2: main (prog.c:90)
==1== 
==1== ERROR SUMMARY: 1 errors from 1 contexts (suppressed: 10 from 2)
`
)

func TestJudgement(t *testing.T) {
	for _, tc := range []struct {
		name   string
		out    string
		exit   int
		defect Defect // "" = must be clean
		ok     bool
	}{
		{"clean run", clean, 0, "", true},
		{"SIGILL is not clean", sigill, 0, "", false},
		{"SIGILL does not catch a leak", sigill, ExitCode, Leak, false},
		{"SIGILL does not catch a double free", sigill, ExitCode, DoubleFree, false},
		{"leak caught", leak, ExitCode, Leak, true},
		{"leak is not clean", leak, ExitCode, "", false},
		{"a leak is not a double free", leak, ExitCode, DoubleFree, false},
		{"double free caught", doubleFree, ExitCode, DoubleFree, true},
		{"leak at another site", otherLeak, ExitCode, Leak, false},
		{"exit 0 with errors reported", leak, 0, Leak, false},
		{"no closing line", strings.Replace(leak, "prog: 12 checks, 0 failures\n", "", 1), ExitCode, Leak, false},
		{"clean output with no error summary", "prog: 12 checks, 0 failures\n", 0, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := parse(tc.out, tc.exit)
			var err error
			if tc.defect == "" {
				err = r.Clean(done)
			} else {
				err = r.Caught(tc.defect, done, "plant_defect (prog.c")
			}
			if (err == nil) != tc.ok {
				t.Fatalf("ok=%v, want %v (err %v)", err == nil, tc.ok, err)
			}
		})
	}
}
