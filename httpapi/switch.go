package httpapi

import (
	"net/http"
	"sync/atomic"
)

// Switch is an http.Handler whose target is replaced atomically, so that a
// reload swaps the API without restarting the listener. Requests already
// running finish on the handler they started with.
type Switch struct{ h atomic.Pointer[http.Handler] }

// NewSwitch returns a Switch serving h.
func NewSwitch(h http.Handler) *Switch {
	s := &Switch{}
	s.Store(h)
	return s
}

// Store makes h the handler for new requests.
func (s *Switch) Store(h http.Handler) { s.h.Store(&h) }

// ServeHTTP serves with the current handler (503 before the first Store).
func (s *Switch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := s.h.Load()
	if p == nil || *p == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	(*p).ServeHTTP(w, r)
}
