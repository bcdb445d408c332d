package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/stirgate/stirgate/outcome"
)

type clientKey struct{}

// WithClient returns ctx naming the authenticated client of a request.
// Authentication sets it; the record of every signing and verification of
// that request carries it.
func WithClient(ctx context.Context, client string) context.Context {
	return context.WithValue(ctx, clientKey{}, client)
}

// ClientFrom returns the client WithClient set, or "".
func ClientFrom(ctx context.Context) string {
	c, _ := ctx.Value(clientKey{}).(string)
	return c
}

// record hands one outcome to the Recorder, keyed on a random id: a
// request carries no call identifier (and an origid is the client's to
// choose, so it cannot be trusted to be unique), and two requests are two
// records.
func (a *API) record(r *http.Request, kind string, fill func(*outcome.Outcome)) {
	if a.o.Recorder == nil {
		return
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	o := outcome.Outcome{
		Time: time.Now().UTC(), System: a.o.System, UniqueID: "http-" + id, Kind: kind,
		Source: outcome.SourceHTTP, Peer: remoteIP(r),
	}
	if a.o.Client != nil {
		o.Client = a.o.Client(r)
	} else {
		o.Client = ClientFrom(r.Context())
	}
	if kind == outcome.KindSign {
		o.Direction = "outbound"
	} else {
		o.Direction = "inbound"
	}
	fill(&o)
	if err := a.o.Recorder.Record(r.Context(), o); err != nil {
		a.o.Logger.Warn("outcome not recorded", "kind", kind, "err", err)
	}
}
