package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/stirgate/stirgate/outcome"
)

// WithClient returns ctx naming the authenticated client of a request, as
// the authentication middleware does; for callers that authenticate in
// front of the API themselves.
func WithClient(ctx context.Context, client string) context.Context {
	return context.WithValue(ctx, clientKey{}, &Client{Name: client})
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
	} else if c := ClientFrom(r.Context()); c != nil {
		o.Client = c.Name
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
