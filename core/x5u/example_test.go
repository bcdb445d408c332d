package x5u_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/x5u"
)

// A Validator that parses a PEM chain once; a real verifier also builds
// and checks the path here, so that cache hits skip both.
func Example() {
	parse := func(_ context.Context, _ string, body []byte) ([]*x509.Certificate, time.Time, error) {
		var chain []*x509.Certificate
		for block, rest := pem.Decode(body); block != nil; block, rest = pem.Decode(rest) {
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, time.Time{}, stir.ErrX5UBadContent.With("certificate", err)
			}
			chain = append(chain, c)
		}
		if len(chain) == 0 {
			return nil, time.Time{}, stir.ErrX5UBadContent.Withf("no PEM certificate")
		}
		notAfter := chain[0].NotAfter
		for _, c := range chain[1:] {
			if c.NotAfter.Before(notAfter) {
				notAfter = c.NotAfter
			}
		}
		return chain, notAfter, nil
	}
	cache, err := x5u.New(x5u.Options[[]*x509.Certificate]{Validate: parse})
	if err != nil {
		panic(err)
	}
	defer cache.Close()

	// The policy refuses this before any look-up or fetch.
	_, err = cache.Get(context.Background(), "https://169.254.169.254/latest/meta-data/")
	fmt.Println(stir.As(err).Name)
	// Output: x5u_forbidden
}
