package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/stirgate/stirgate/httpapi"
)

func init() {
	register("token", "token NAME: make an API bearer token and print its [[http.token]] block", runToken)
}

// runToken makes a random bearer token for one API client. The token goes
// to the client (printed once, on stderr's side of the terminal: stdout
// carries the config block), and only its SHA-256 goes into the config.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scopes := fs.String("scopes", "sign", "comma-separated scopes: sign, verify, read")
	customer := fs.String("customer", "", "[[policy.customer]] this client signs for")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: stirgate token [--scopes sign,verify,read] [--customer NAME] NAME")
		fs.PrintDefaults()
	}
	// The name may come before or after the flags.
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() != 0 {
		fs.Usage()
		return exitUsage
	}
	if name == "" || strings.ContainsAny(name, " \t\r\n\"") {
		fs.Usage()
		return exitUsage
	}
	var list []string
	for _, s := range strings.Split(*scopes, ",") {
		switch s = strings.TrimSpace(s); s {
		case httpapi.ScopeSign, httpapi.ScopeVerify, httpapi.ScopeRead:
			list = append(list, `"`+s+`"`)
		default:
			fmt.Fprintf(stderr, "stirgate token: scope %q: want sign, verify or read\n", s)
			return exitUsage
		}
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		fmt.Fprintf(stderr, "stirgate token: %v\n", err)
		return exitFail
	}
	tok := "sg_" + base64.RawURLEncoding.EncodeToString(b[:])
	fmt.Fprintf(stderr, "Token for %s (give it to the client; it is not stored anywhere):\n%s\n\nAdd to the config:\n", name, tok)
	fmt.Fprintf(stdout, "[[http.token]]\nname = %q\nsha256 = %q\nscopes = [%s]\n", name, httpapi.HashToken(tok), strings.Join(list, ", "))
	if *customer != "" {
		fmt.Fprintf(stdout, "customer = %q\n", *customer)
	}
	return exitOK
}
