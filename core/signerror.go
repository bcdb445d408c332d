package core

import "github.com/stirgate/stirgate/core/stir"

// SignError is the error Sign and SignDiv return for a call they refused
// after attributing it to a customer or tenant: an expired or revoked
// tenant certificate, a tenant not configured, a Date out of the window
// from a known customer. It wraps the *stir.Error that refused the call
// (stir.As and errors.As find it, errors.Is matches its sentinel, Error
// reads the same), and names whom the signature was for, so that a
// refusal is recorded against its tenant and customer as a signature is
// (outcome.Outcome.SetRefused; FCC 24-120 arrangement records).
//
// A call refused before anything attributed it (the policy knows neither
// its customer nor its source and has no default) returns the bare
// *stir.Error.
type SignError struct {
	Err *stir.Error
	// Tenant is the tenant whose credential would have signed (named even
	// when it is not configured); SPC is that credential's service
	// provider code once the refusal came from the credential itself
	// (expired, revoked, out of scope), empty for one that came before.
	Tenant string
	SPC    string
	// Customer is the policy customer the call was attributed to, if any;
	// Rule the policy rule that decided its attestation (empty when the
	// calling number was refused, since the rule depends on it).
	Customer string
	Rule     string
}

func (e *SignError) Error() string { return e.Err.Error() }

// Unwrap returns the *stir.Error.
func (e *SignError) Unwrap() error { return e.Err }

// attribute notes whom a call is for once the policy has decided (or
// has named the customer before refusing the request).
func (e *SignError) attribute(d decision, err error) {
	if err != nil && d.customer == "" {
		return
	}
	e.Customer, e.Rule, e.Tenant = d.customer, d.rule, d.tenant
	if e.Tenant == "" {
		e.Tenant = DefaultTenant
	}
}

// wrap returns err as a *SignError when the call was attributed, else as
// it is. An error that is not a *stir.Error is made one.
func (e *SignError) wrap(err error) error {
	if e.Tenant == "" && e.Customer == "" {
		return err
	}
	se := stir.As(err)
	if se == nil {
		se = stir.ErrInternal.With("", err)
	}
	out := *e
	out.Err = se
	return &out
}
