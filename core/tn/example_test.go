package tn_test

import (
	"fmt"

	"github.com/stirgate/stirgate/core/tn"
)

func ExampleCanonical() {
	for _, s := range []string{"+1 (215) 555-0121", "215.555.0121", "*67"} {
		c, _ := tn.Canonical(s, tn.NANP())
		fmt.Println(c)
	}
	// Output:
	// 12155550121
	// 12155550121
	// *67
}

func ExampleFromHeader() {
	c, _ := tn.FromHeader(`"Alice" <sip:+12155550121;npdi;rn=+12155550000@example.com;user=phone>;tag=x`, tn.NANP())
	fmt.Println(c)
	// Output: 12155550121
}

func ExampleAddVerstat() {
	fmt.Println(tn.AddVerstat(`"Alice" <sip:+12155550121@example.com;user=phone>;tag=x`, "TN-Validation-Passed"))
	fmt.Println(tn.AddVerstat("tel:+12155550121;verstat=TN-Validation-Passed", "TN-Validation-Failed"))
	// Output:
	// "Alice" <sip:+12155550121;verstat=TN-Validation-Passed@example.com;user=phone>;tag=x
	// <tel:+12155550121;verstat=TN-Validation-Failed>
}
