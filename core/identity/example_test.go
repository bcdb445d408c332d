package identity_test

import (
	"fmt"

	"github.com/stirgate/stirgate/core/identity"
	"github.com/stirgate/stirgate/core/stir"
)

func ExampleParse() {
	h, err := identity.Parse("aGVhZGVy.Y2xhaW1z.c2ln ; ppt=\"shaken\";INFO=<https://cert.example.org/sp.pem>")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(h.Protected, h.Info, h.Ppt, h.IsShaken())
	// Output: aGVhZGVy.Y2xhaW1z https://cert.example.org/sp.pem shaken true
}

func ExampleCollect() {
	hdrs, errs, err := identity.Collect([]string{
		"aGVhZGVy.Y2xhaW1z.c2ln;info=<https://x.example/1.pem>, aGVhZGVy.Y2xhaW1z.c2ln;info=<https://x.example/2.pem>;ppt=div",
		"..c2ln;info=<https://x.example/3.pem>",
	}, identity.Limits{})
	fmt.Println(len(hdrs), hdrs[1].IsShaken(), err)
	for _, e := range errs {
		fmt.Println(stir.As(e).Name, stir.As(e).SIPCode)
	}
	// Output:
	// 2 false <nil>
	// compact_form 438
}
