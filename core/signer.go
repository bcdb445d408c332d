package core

import (
	"context"

	"github.com/stirgate/stirgate/core/stir"
)

// Signer is the STI-AS. Safe for concurrent use.
type Signer struct {
	opts SignerOptions
}

// SignerOptions configures a Signer. (Filled in by the core work.)
type SignerOptions struct{}

// NewSigner builds a Signer.
func NewSigner(opts SignerOptions) (*Signer, error) { return &Signer{opts: opts}, nil }

// Sign signs one call.
func (s *Signer) Sign(ctx context.Context, req SignRequest) (*SignResult, error) {
	return nil, stir.ErrInternal.Withf("not implemented yet")
}
