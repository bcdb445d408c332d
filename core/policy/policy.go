// Package policy decides the attestation level of a call to sign
// (ATIS-1000074 §5.2.3): A when the customer is authenticated and owns the
// number, B when the customer is known but the number is not theirs, C for
// gateway traffic, and a configured default for everything else.
package policy

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/stirgate/stirgate/core/stir"
)

// Customer is an authenticated origin of calls: a PBX customer or a trunk.
type Customer struct {
	Name string
	// OrigID is the customer's fixed origid (RFC 8588 §4); empty means one
	// per call.
	OrigID string
	// Numbers the customer owns: exact TNs ("12155550121"), prefixes
	// ("1215555*") or inclusive ranges ("12155550100-12155550199"), all
	// canonical digits.
	Numbers []string
	// Sources identify the customer's traffic when the request does not name
	// it: IP addresses, CIDR prefixes or trunk tags (e.g. an otg value).
	Sources []string
	// RCD is the rich call data (RFC 9795) signed for the customer's calls
	// when a request brings none; nil signs none.
	RCD *RCD
	// RCDNumbers give some of the customer's calling numbers their own
	// rich call data (a department's name, a branch's logo). The most
	// specific entry covering the calling number replaces RCD whole;
	// a number no entry covers falls back to RCD.
	RCDNumbers []NumberRCD
	// AttestOverride lets this customer choose the attestation of its
	// calls (a request's attest is used as given, even above what the
	// numbers earn). Off, a request may only lower the level.
	AttestOverride bool
	// Tenant names the signing credential (core.Tenant) of this customer's
	// calls; empty is the tenant named "default". FCC 24-120: a provider
	// signing for another signs with that provider's own certificate.
	Tenant string
}

// Rules: the stable names of what decided a call's attestation, recorded
// with every signature (the arrangement records of FCC 24-120). The first
// four are the policy's; the Signer adds the last three when a request's
// attest was used.
const (
	RuleCustomerNumber = "customer_number" // a known customer, calling from its own number: A
	RuleCustomer       = "customer"        // a known customer, number not theirs: B
	RuleGateway        = "gateway"         // a gateway source: C
	RuleDefault        = "default"         // nothing matched: [policy] default
	RuleOverride       = "override"        // the customer chose (attest_override)
	RuleTrustedCaller  = "trusted_caller"  // the operator's own process chose (SignRequest.Trusted)
	RuleRequestedLower = "requested_lower" // the request asked for less than the policy grants
)

// RCD is a customer's rich call data: display name, logo URL, a jCard
// inline (JSON text) or by URL, and the call reason signed when a request
// gives none.
type RCD struct {
	Nam string
	Icn string
	Jcl string
	Jcd string
	Crn string
}

// NumberRCD is rich call data for the calling numbers it lists: exact
// TNs, prefixes ("1202555*") or ranges ("12025550100-12025550199"), the
// same forms as Customer.Numbers.
type NumberRCD struct {
	Numbers []string
	RCD
}

func (r *RCD) check() error {
	if r.Nam == "" {
		return fmt.Errorf("rcd needs nam (RFC 9795)")
	}
	if r.Jcd != "" && r.Jcl != "" {
		return fmt.Errorf("rcd has both jcd and jcl")
	}
	return nil
}

// Options configures a Policy.
type Options struct {
	Customers []Customer
	// Gateways are sources (addresses, prefixes, tags) whose traffic is
	// signed C: calls entering from another network.
	Gateways []string
	// Default is the attestation for traffic from unknown sources. Empty
	// refuses to sign it.
	Default stir.Attestation
}

// Decision is the outcome of Decide.
type Decision struct {
	Attest   stir.Attestation
	OrigID   string // customer's fixed origid, or empty
	Customer string // matched customer, or empty
	Why      string // short explanation for logs
	// Override: the customer may choose the attestation itself.
	Override bool
	// Rule is the stable name of the case that decided (Rule* constants).
	Rule string
	// Tenant is the matched customer's tenant ("" without a customer or
	// when the customer names none: the default tenant).
	Tenant string
}

// Input is what the policy looks at.
type Input struct {
	Customer string // explicit customer or trunk name
	Source   string // source address ("192.0.2.10" or "192.0.2.10:5060") or tag
	Orig     string // canonical calling TN
}

// Policy is immutable after New and safe for concurrent use.
type Policy struct {
	byName    map[string]*customer
	customers []*customer
	gateways  matcher
	def       stir.Attestation
	hasRCD    bool // some customer has rich call data
}

type customer struct {
	Customer
	numSet
	sources matcher
	rcdNums []numberRCD
}

type numberRCD struct {
	set numSet
	rcd *RCD
}

// numSet is a set of TNs: exact, by prefix and by range.
type numSet struct {
	exact  map[string]bool
	prefix []string
	ranges []tnRange
}

type tnRange struct{ lo, hi string }

// New validates opts and builds a Policy.
func New(opts Options) (*Policy, error) {
	p := &Policy{byName: map[string]*customer{}, def: opts.Default}
	if opts.Default != "" {
		if _, err := stir.ParseAttestation(string(opts.Default)); err != nil {
			return nil, fmt.Errorf("policy default: %w", err)
		}
	}
	var err error
	if p.gateways, err = newMatcher(opts.Gateways); err != nil {
		return nil, fmt.Errorf("policy gateways: %w", err)
	}
	for i, c := range opts.Customers {
		if c.Name == "" {
			return nil, fmt.Errorf("policy customer %d: name is empty", i+1)
		}
		if p.byName[c.Name] != nil {
			return nil, fmt.Errorf("policy customer %q: defined twice", c.Name)
		}
		if c.RCD != nil {
			if err := c.RCD.check(); err != nil {
				return nil, fmt.Errorf("policy customer %q: %w", c.Name, err)
			}
			p.hasRCD = true
		}
		cc := &customer{Customer: c, numSet: numSet{exact: map[string]bool{}}}
		for _, n := range c.Numbers {
			if err := cc.addNumber(n); err != nil {
				return nil, fmt.Errorf("policy customer %q: %w", c.Name, err)
			}
		}
		for j, nr := range c.RCDNumbers {
			if err := nr.RCD.check(); err != nil {
				return nil, fmt.Errorf("policy customer %q rcd_number %d: %w", c.Name, j+1, err)
			}
			if len(nr.Numbers) == 0 {
				return nil, fmt.Errorf("policy customer %q rcd_number %d: numbers is empty", c.Name, j+1)
			}
			e := numberRCD{set: numSet{exact: map[string]bool{}}, rcd: &c.RCDNumbers[j].RCD}
			for _, n := range nr.Numbers {
				if err := e.set.addNumber(n); err != nil {
					return nil, fmt.Errorf("policy customer %q rcd_number %d: %w", c.Name, j+1, err)
				}
			}
			cc.rcdNums = append(cc.rcdNums, e)
			p.hasRCD = true
		}
		if cc.sources, err = newMatcher(c.Sources); err != nil {
			return nil, fmt.Errorf("policy customer %q: %w", c.Name, err)
		}
		p.byName[c.Name] = cc
		p.customers = append(p.customers, cc)
	}
	return p, nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (c *numSet) addNumber(n string) error {
	switch {
	case strings.HasSuffix(n, "*") && digits(strings.TrimSuffix(n, "*")):
		c.prefix = append(c.prefix, strings.TrimSuffix(n, "*"))
	case strings.Contains(n, "-"):
		lo, hi, _ := strings.Cut(n, "-")
		if !digits(lo) || !digits(hi) || len(lo) != len(hi) || lo > hi {
			return fmt.Errorf("number range %q: want LOW-HIGH, same length, LOW <= HIGH", n)
		}
		c.ranges = append(c.ranges, tnRange{lo, hi})
	case digits(n):
		c.exact[n] = true
	default:
		return fmt.Errorf("number %q: want canonical digits, PREFIX* or LOW-HIGH", n)
	}
	// Longest prefix first so a lookup can stop at the first hit.
	sort.Slice(c.prefix, func(i, j int) bool { return len(c.prefix[i]) > len(c.prefix[j]) })
	return nil
}

// Owns reports whether tn is in the set.
func (c *numSet) owns(tn string) bool {
	if c.exact[tn] {
		return true
	}
	for _, p := range c.prefix {
		if strings.HasPrefix(tn, p) {
			return true
		}
	}
	for _, r := range c.ranges {
		// Same-length digit strings compare like numbers.
		if len(tn) == len(r.lo) && r.lo <= tn && tn <= r.hi {
			return true
		}
	}
	return false
}

// span is how many TNs of tn's length the entry that matched tn covers,
// or 0 when none matches: the smaller, the more specific. An exact TN
// covers 1, a prefix 10^(digits it leaves open), a range its width.
func (c *numSet) span(tn string) uint64 {
	if c.exact[tn] {
		return 1
	}
	best := uint64(0)
	better := func(n uint64) {
		if best == 0 || n < best {
			best = n
		}
	}
	for _, p := range c.prefix {
		if strings.HasPrefix(tn, p) {
			n := uint64(1)
			for i := len(p); i < len(tn) && n < 1e18; i++ {
				n *= 10
			}
			better(n)
			break // longest first: the first hit is this set's narrowest prefix
		}
	}
	for _, r := range c.ranges {
		if len(tn) == len(r.lo) && r.lo <= tn && tn <= r.hi {
			lo, _ := strconv.ParseUint(r.lo, 10, 64)
			hi, _ := strconv.ParseUint(r.hi, 10, 64)
			better(hi - lo + 1)
		}
	}
	return best
}

// RCDFor returns the rich call data of a call: that of the customer's
// most specific rcd_number entry covering in.Orig (the first listed on a
// tie), else the customer's own; nil when the call has no customer (named,
// or found by source) or the customer no rcd.
func (p *Policy) RCDFor(in Input) *RCD {
	if p == nil || !p.hasRCD {
		return nil
	}
	var c *customer
	if in.Customer != "" {
		c = p.byName[in.Customer]
	} else if in.Source != "" {
		for _, cc := range p.customers {
			if cc.sources.match(in.Source) {
				c = cc
				break
			}
		}
	}
	if c == nil {
		return nil
	}
	var best *RCD
	bestSpan := uint64(0)
	if in.Orig != "" {
		for _, e := range c.rcdNums {
			if n := e.set.span(in.Orig); n != 0 && (bestSpan == 0 || n < bestSpan) {
				best, bestSpan = e.rcd, n
			}
		}
	}
	if best != nil {
		return best
	}
	return c.RCD
}

// Decide picks the attestation for one call. It returns
// stir.ErrSignNotAllowed when the call must not be signed.
func (p *Policy) Decide(in Input) (Decision, error) {
	var c *customer
	if in.Customer != "" {
		c = p.byName[in.Customer]
		if c == nil {
			return Decision{}, stir.ErrSignNotAllowed.Withf("unknown customer %q", in.Customer)
		}
	} else if in.Source != "" {
		for _, cc := range p.customers {
			if cc.sources.match(in.Source) {
				c = cc
				break
			}
		}
	}
	if c != nil {
		d := Decision{Customer: c.Name, OrigID: c.OrigID, Override: c.AttestOverride, Tenant: c.Tenant}
		if c.owns(in.Orig) {
			d.Attest, d.Why, d.Rule = stir.AttestFull, "customer owns the number", RuleCustomerNumber
		} else {
			d.Attest, d.Why, d.Rule = stir.AttestPartial, "known customer, number not theirs", RuleCustomer
		}
		return d, nil
	}
	if in.Source != "" && p.gateways.match(in.Source) {
		return Decision{Attest: stir.AttestGateway, Why: "gateway source", Rule: RuleGateway}, nil
	}
	if p.def == "" {
		return Decision{}, stir.ErrSignNotAllowed.Withf("source %q matches no customer or gateway and no default attestation is set", in.Source)
	}
	return Decision{Attest: p.def, Why: "default", Rule: RuleDefault}, nil
}

// CustomerTenants maps every customer that names a tenant to it, so that
// a Signer can refuse a name it does not hold when it is built.
func (p *Policy) CustomerTenants() map[string]string {
	out := map[string]string{}
	if p == nil {
		return out
	}
	for _, c := range p.customers {
		if c.Tenant != "" {
			out[c.Name] = c.Tenant
		}
	}
	return out
}

// TenantOf returns the tenant of the named customer ("" when it names
// none or is unknown).
func (p *Policy) TenantOf(customer string) string {
	if p == nil {
		return ""
	}
	if c := p.byName[customer]; c != nil {
		return c.Tenant
	}
	return ""
}

// matcher matches a source against addresses, prefixes and tags.
type matcher struct {
	prefixes []netip.Prefix
	tags     map[string]bool
}

func newMatcher(items []string) (matcher, error) {
	m := matcher{tags: map[string]bool{}}
	for _, it := range items {
		if it == "" {
			return m, fmt.Errorf("empty source")
		}
		if pfx, err := netip.ParsePrefix(it); err == nil {
			m.prefixes = append(m.prefixes, pfx.Masked())
			continue
		}
		if a, err := netip.ParseAddr(it); err == nil {
			m.prefixes = append(m.prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		m.tags[it] = true
	}
	return m, nil
}

func (m matcher) match(src string) bool {
	if m.tags[src] {
		return true
	}
	a, err := netip.ParseAddr(src)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(src)
		if err2 != nil {
			return false
		}
		a = ap.Addr()
	}
	a = a.Unmap()
	for _, p := range m.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
