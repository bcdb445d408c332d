package testlog

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a testing.TB that keeps what is logged.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	logs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Log(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range args {
		r.logs = append(r.logs, a.(string))
	}
}

// TestHandshakeErrorGoesToTheTest: a client that hangs up mid-handshake
// (the noise this package exists for) is logged through the test, once
// the server has seen it (waited for: the server logs from its own
// goroutine).
func TestHandshakeErrorGoesToTheTest(t *testing.T) {
	rec := &recorder{TB: t}
	s := NewTLSServer(rec, http.NotFoundHandler())
	c, err := net.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{0x16, 0x03, 0x01}) // the start of a ClientHello, then EOF
	c.Close()
	var got string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		rec.mu.Lock()
		got = strings.Join(rec.logs, "\n")
		rec.mu.Unlock()
		if got != "" {
			break
		}
	}
	if !strings.Contains(got, "TLS handshake error") {
		t.Errorf("logged %q, want the handshake error", got)
	}
}
