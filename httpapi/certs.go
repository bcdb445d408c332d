package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
)

// pubChain is one certificate chain as /certs/ serves it: public material
// only, leaf first.
type pubChain struct {
	body []byte
	etag string
}

func newPubChain(c *certs.SigningCredential) *pubChain {
	var b []byte
	for _, crt := range c.Chain {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: crt.Raw})...)
	}
	sum := sha256.Sum256(b)
	return &pubChain{body: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// pubEntry is what one /certs/<file> serves: a chain, or a tenant's
// current chain until its next one activates and that one after.
type pubEntry struct {
	cur, next *pubChain
	activate  time.Time
}

func (e pubEntry) at(now time.Time) *pubChain {
	if e.next != nil && !now.Before(e.activate) {
		return e.next
	}
	return e.cur
}

// publishTable maps file names under /certs/ to what they serve:
//   - the default tenant's chain at <certName>.pem (the x5u's base name,
//     else "sp"), as before tenants;
//   - every x5u a tenant signs with (current and next) at its base name,
//     for as long as it is configured: a token signed just before an
//     activation names the current x5u, and a verifier fetching it later
//     must still get the chain that signed it;
//   - every tenant's chain at <tenant>.pem (when no x5u took that name),
//     switching to the next chain at its activation.
//
// A name taken first keeps its chain.
func publishTable(s *core.Signer, certName string) map[string]pubEntry {
	out := map[string]pubEntry{}
	add := func(name string, e pubEntry) {
		if _, taken := out[name+".pem"]; name != "" && !taken {
			out[name+".pem"] = e
		}
	}
	ts := s.Tenants()
	type pub struct{ cur, next, rot pubEntry }
	ps := make([]pub, len(ts))
	for i, t := range ts {
		p := pub{cur: pubEntry{cur: newPubChain(t.Credential)}}
		p.rot = p.cur
		if t.Next != nil {
			p.next = pubEntry{cur: newPubChain(t.Next.Credential)}
			p.rot.next, p.rot.activate = p.next.cur, t.Next.Activate
		}
		ps[i] = p
		if t.Name == core.DefaultTenant {
			add(certName, p.cur)
		}
	}
	for i, t := range ts {
		add(certNameFromURL(t.X5U), ps[i].cur)
		if t.Next != nil {
			add(certNameFromURL(t.Next.X5U), ps[i].next)
		}
	}
	for i, t := range ts {
		add(t.Name, ps[i].rot)
	}
	return out
}
