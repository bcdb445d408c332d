package certs_test

import (
	"bytes"
	"encoding/pem"
	"os"
	"testing"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/internal/testpki"
)

// FuzzParsePEMChain: every x5u body a verifier fetches goes through
// ParsePEMChain. Whatever the input, it returns either an
// ErrX5UBadContent and no certificate, or between 1 and max certificates,
// each of which is, byte for byte, the DER of the matching PEM block of
// the input: nothing skipped, nothing invented, nothing reordered.
func FuzzParsePEMChain(f *testing.F) {
	lab := testpki.Default(f)
	chain := lab.ChainPEM()
	three := append(append([]byte(nil), chain...), certs.EncodePEM(lab.Root)...)
	var eleven []byte
	for range 11 {
		eleven = append(eleven, certs.EncodePEM(lab.Leaf)...)
	}
	huge := append([]byte("-----BEGIN CERTIFICATE-----\n"), bytes.Repeat([]byte("QUFB"), 64<<10/4)...)
	huge = append(huge, "\n-----END CERTIFICATE-----\n"...)
	seeds := [][]byte{
		chain,
		three,
		append([]byte("\r\n "), chain...),
		chain[:len(chain)/2],  // truncated in the first block
		chain[:len(chain)-30], // truncated in the last block
		[]byte("garbage"),     // not PEM
		lab.Leaf.Raw,          // DER
		eleven,                // more than the default max
		huge,                  // one 64 KiB block that is no certificate
		[]byte("-----BEGIN CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n"),
		[]byte("-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END CERTIFICATE-----\n"),
	}
	if b, err := os.ReadFile("testdata/libstirshaken/sp_sp.pem"); err == nil {
		seeds = append(seeds, b)
	} else {
		f.Fatal(err)
	}
	for _, s := range seeds {
		for _, max := range []int{0, 2, 10} {
			f.Add(s, max)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		max %= 20 // the callers pass small caps; keep the property checkable
		got, err := certs.ParsePEMChain(data, max)
		if err != nil {
			if got != nil {
				t.Fatalf("certificates returned with error %v", err)
			}
			if e := stir.As(err); e == nil || e.Name != stir.ErrX5UBadContent.Name {
				t.Fatalf("error %v is not %s", err, stir.ErrX5UBadContent.Name)
			}
			return
		}
		limit := max
		if limit <= 0 {
			limit = 10
		}
		if len(got) == 0 || len(got) > limit {
			t.Fatalf("%d certificates, want 1..%d", len(got), limit)
		}
		rest := data
		for i, c := range got {
			// Blocks are separated by whitespace only: pem.Decode would
			// skip anything else, and with it a block.
			rest = bytes.TrimLeft(rest, " \t\r\n")
			if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
				t.Fatalf("certificate %d returned, but the input has no block %d at that place", i, i)
			}
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				t.Fatalf("certificate %d returned, but the input has only %d PEM blocks", i, i)
			}
			if blk.Type != "CERTIFICATE" || !bytes.Equal(blk.Bytes, c.Raw) {
				t.Fatalf("certificate %d is not the DER of input block %d (%s)", i, i, blk.Type)
			}
			if !bytes.Equal(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), certs.EncodePEM(c)) {
				t.Fatalf("certificate %d does not re-encode to its own PEM", i)
			}
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			t.Fatalf("accepted with %d bytes after the last certificate", len(bytes.TrimSpace(rest)))
		}
	})
}
