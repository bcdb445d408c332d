package httpapi

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/crl"
)

// Degraded is a readiness finding that still answers /readyz with 200:
// the node serves every call, but an operator must act soon. Taking a
// node out of rotation for it would not help (its siblings share the
// certificate and the CRL server), and would turn a warning into an
// outage.
type Degraded struct{ Reasons []string }

func (d *Degraded) Error() string { return strings.Join(d.Reasons, "; ") }

// Readiness judges the signer and verifier at now. Not ready (an error):
// the signing certificate cannot sign now (not yet valid or expired), so
// every signature would fail. Degraded: the certificate is within its last
// expiry lead time ([signer] expiry_warn), or a fetched CRL is past its
// grace (verifications then follow crl_stale). Either may be nil.
func Readiness(s *core.Signer, v *core.Verifier, now time.Time) error {
	var deg []string
	if s != nil {
		// The default tenant decides readiness (without one: whether any
		// tenant can sign); another tenant that cannot sign degrades it,
		// since every other customer's calls still sign.
		es := s.TenantExpiry(now)
		anyOK := false
		for _, e := range es {
			anyOK = anyOK || e.CanSign
		}
		for _, e := range es {
			what := "signing certificate"
			if e.Tenant != core.DefaultTenant {
				what = "tenant " + e.Tenant + " signing certificate"
			}
			switch {
			case !e.CanSign && (e.Tenant == core.DefaultTenant || !anyOK):
				return fmt.Errorf("%s cannot sign now (valid %s..%s)", what,
					e.NotBefore.UTC().Format(time.RFC3339), e.NotAfter.UTC().Format(time.RFC3339))
			case !e.CanSign:
				deg = append(deg, fmt.Sprintf("%s cannot sign now (valid %s..%s)", what,
					e.NotBefore.UTC().Format(time.RFC3339), e.NotAfter.UTC().Format(time.RFC3339)))
			case e.Last:
				deg = append(deg, fmt.Sprintf("%s expires in %s (at %s)", what,
					e.Left.Round(time.Minute), e.NotAfter.UTC().Format(time.RFC3339)))
			}
		}
	}
	if v != nil {
		if src, ok := v.Revocation().(*crl.Source); ok {
			for _, st := range src.Status() {
				if !st.Usable {
					deg = append(deg, "no usable CRL from "+st.URL)
				}
			}
		}
	}
	if len(deg) > 0 {
		return &Degraded{Reasons: deg}
	}
	return nil
}

// IsDegraded reports whether err is a Degraded finding.
func IsDegraded(err error) bool {
	var d *Degraded
	return errors.As(err, &d)
}
