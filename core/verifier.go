package core

import (
	"context"

	"github.com/stirgate/stirgate/core/stir"
)

// Verifier is the STI-VS. Safe for concurrent use.
type Verifier struct {
	opts VerifierOptions
}

// VerifierOptions configures a Verifier. (Filled in by the core work.)
type VerifierOptions struct{}

// NewVerifier builds a Verifier.
func NewVerifier(opts VerifierOptions) (*Verifier, error) { return &Verifier{opts: opts}, nil }

// Verify judges one request. It never returns nil.
func (v *Verifier) Verify(ctx context.Context, req VerifyRequest) *stir.Result {
	return (&stir.Result{}).Failed(stir.ErrInternal.Withf("not implemented yet"))
}
