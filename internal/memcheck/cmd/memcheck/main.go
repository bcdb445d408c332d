// Command memcheck runs one program under valgrind for the make targets of
// the C surfaces and judges the run: clean, or (with -expect) a control run
// whose planted defect valgrind must report at one of the -site names.
//
//	memcheck [-supp FILE]... [-expect leak|double-free|use-after-free -site NAME...] -done REGEXP -- PROG ARGS...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/stirgate/stirgate/internal/memcheck"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var supp, sites, env list
	flag.Var(&supp, "supp", "valgrind suppression file (repeatable)")
	flag.Var(&sites, "site", "with -expect: a function or file name the defect's report must show (repeatable; any one)")
	flag.Var(&env, "env", "NAME=VALUE added to the program's environment (repeatable)")
	expect := flag.String("expect", "", "planted defect the run must be failed for: leak, double-free, use-after-free")
	done := flag.String("done", "", "regular expression of the program's own closing line (required)")
	flag.Parse()
	if flag.NArg() == 0 || *done == "" || (*expect != "") != (len(sites) > 0) {
		fmt.Fprintln(os.Stderr, "usage: memcheck [-supp FILE]... [-expect DEFECT -site NAME...] -done REGEXP -- PROG ARGS...")
		os.Exit(2)
	}
	doneRE, err := regexp.Compile(*done)
	if err != nil {
		fmt.Fprintln(os.Stderr, "memcheck: -done:", err)
		os.Exit(2)
	}
	cmd, err := memcheck.Command(context.Background(), memcheck.Options{Suppressions: supp, Env: env}, flag.Arg(0), flag.Args()[1:]...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "memcheck:", err)
		os.Exit(1)
	}
	rep, err := memcheck.Run(cmd)
	if err != nil {
		fmt.Fprintln(os.Stderr, "memcheck:", err)
		os.Exit(1)
	}
	if *expect == "" {
		err = rep.Clean(doneRE)
	} else {
		err = rep.Caught(memcheck.Defect(*expect), doneRE, sites...)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s\nmemcheck %s: %v\n", memcheck.Tail(rep.Output, 60), flag.Arg(0), err)
		os.Exit(1)
	}
	if *expect == "" {
		fmt.Printf("memcheck %s: clean (%d errors)\n", flag.Arg(0), rep.Errors)
	} else {
		fmt.Printf("memcheck %s: planted %s caught (%d errors)\n", flag.Arg(0), *expect, rep.Errors)
	}
}
