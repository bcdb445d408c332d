package sipredirect

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
)

// The answer path in one process, without sockets, scheduler or outcome
// store: parse, decide, sign or verify, format. Beside raw ECDSA, it tells
// how much of a 302's cost in `make bench-capacity` is this code and how
// much the process around it (see README.md, "Capacity").

func benchHandler(b *testing.B) (*Handler, *testLab) {
	l := newTestLab(b, time.Now)
	h, err := NewHandler(Options{Signer: l.signer, Verifier: l.verifier, Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		AttestationIndicator: true, OriginationID: true})
	if err != nil {
		b.Fatal(err)
	}
	return h, l
}

func benchAnswer(b *testing.B, h *Handler, msg func(i int) []byte, want int) {
	src := netip.MustParseAddrPort("192.0.2.10:5060")
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r, err := ParseRequest(msg(i), Limits{}, true)
		if err != nil {
			b.Fatal(err)
		}
		a := h.Handle(ctx, Auto, r, src)
		if a.Code != 302 || a.Outcome != [...]string{"signed", "pass"}[want] {
			b.Fatalf("%d %s %s", a.Code, a.Outcome, a.Error)
		}
		_ = encode(r, a, src)
		i++
	}
}

func BenchmarkAnswerSign(b *testing.B) {
	h, _ := benchHandler(b)
	msgs := make([][]byte, 1024)
	for i := range msgs {
		msgs[i] = []byte(invite("bench-" + strconv.Itoa(i)))
	}
	benchAnswer(b, h, func(i int) []byte { return msgs[i%len(msgs)] }, 0)
}

func BenchmarkAnswerVerify(b *testing.B) {
	h, l := benchHandler(b)
	r, err := l.signer.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "A", Trusted: true})
	if err != nil {
		b.Fatal(err)
	}
	msgs := make([][]byte, 1024)
	for i := range msgs {
		msgs[i] = []byte(invite("bench-"+strconv.Itoa(i), "Identity: "+r.Identity))
	}
	benchAnswer(b, h, func(i int) []byte { return msgs[i%len(msgs)] }, 1)
}

func benchKey(b *testing.B) (*ecdsa.PrivateKey, []byte, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	input := make([]byte, 320) // a SHAKEN signing input's size
	d := sha256.Sum256(input)
	sig, err := ecdsa.SignASN1(rand.Reader, key, d[:])
	if err != nil {
		b.Fatal(err)
	}
	return key, input, sig
}

func BenchmarkRawECDSASign(b *testing.B) {
	key, input, _ := benchKey(b)
	b.ReportAllocs()
	for b.Loop() {
		d := sha256.Sum256(input)
		if _, err := ecdsa.SignASN1(rand.Reader, key, d[:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawECDSAVerify(b *testing.B) {
	key, input, sig := benchKey(b)
	b.ReportAllocs()
	for b.Loop() {
		d := sha256.Sum256(input)
		if !ecdsa.VerifyASN1(&key.PublicKey, d[:], sig) {
			b.Fatal("verify failed")
		}
	}
}
