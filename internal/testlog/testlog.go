// Package testlog sends what test servers log to the test that runs them,
// so a passing package prints nothing between results (net/http writes a
// server's errors, such as a client hanging up mid-handshake, to stderr
// unless its ErrorLog says otherwise) and a failing one shows them beside
// its own output.
package testlog

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type writer struct{ t testing.TB }

func (w writer) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Writer returns an io.Writer whose every write is one t.Log line.
func Writer(t testing.TB) io.Writer { return writer{t} }

// Logger returns a *log.Logger for http.Server.ErrorLog that logs to t.
func Logger(t testing.TB) *log.Logger { return log.New(Writer(t), "", 0) }

// NewServer is httptest.NewServer with its ErrorLog on t; it is closed
// when the test ends (closing it earlier is fine).
func NewServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = Logger(t)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// NewTLSServer is httptest.NewTLSServer with its ErrorLog on t; it is
// closed when the test ends (closing it earlier is fine).
func NewTLSServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = Logger(t)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}
