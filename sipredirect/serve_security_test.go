package sipredirect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeTCPLimits runs `stirgate serve` with [sip] allow and
// tcp_max_per_source from the config file: a host outside the allow-list
// and the allowed host's connections over its share are closed at accept,
// a replay from outside gets 403, and the switch is signed for
// throughout.
func TestServeTCPLimits(t *testing.T) {
	bin := stirgateBin(t)
	dir := t.TempDir()
	port := freePort(t, "udp")
	sipAddr := fmt.Sprintf("127.0.0.1:%d", port)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	cfg := fmt.Sprintf(`
[lab]
dir = "lab"
listen = %q

[policy]
default = "A"

[store]
path = "outcomes.db"

[sip]
allow = ["127.0.0.1"]
tcp_max_per_source = 2
tcp_first_message_timeout = "1m"

[[sip.listen]]
address = %q
transport = "both"
mode = "sign"
`, httpAddr, sipAddr)
	path := filepath.Join(dir, "stirgate.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", path)
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("serve log:\n%s", tail(string(b), 4000))
		}
	})
	waitOptions(t, sipAddr)

	msg := invite("serve-replay")
	if r := udpFrom(t, hostSwitch, sipAddr, msg); !signed(r) {
		t.Fatalf("switch:\n%s", r.raw)
	}
	if r := udpFrom(t, hostOutsider, sipAddr, msg); r.code != 403 {
		t.Fatalf("outsider replay:\n%s", r.raw)
	}

	closedAtAccept := func(src netip.Addr, what string) {
		t.Helper()
		c, err := dialFrom(src, sipAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
			t.Fatalf("%s: %v, want the connection closed", what, err)
		}
	}
	closedAtAccept(hostOutsider, "outsider")
	holdIdle(t, hostSwitch, sipAddr, 2) // its share
	closedAtAccept(hostSwitch, "third connection of the switch")
	if r := udpFrom(t, hostSwitch, sipAddr, invite("serve-after")); !signed(r) {
		t.Fatalf("switch after the refusals:\n%s", r.raw)
	}
}

// waitOptions polls OPTIONS over UDP until the server answers 200.
func waitOptions(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opt := strings.Replace(strings.Replace(invite("ready"), "INVITE sip", "OPTIONS sip", 1), "1 INVITE", "1 OPTIONS", 1)
	deadline := time.Now().Add(60 * time.Second)
	buf := make([]byte, 4096)
	for time.Now().Before(deadline) {
		_, _ = c.Write([]byte(opt))
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := c.Read(buf); err == nil && strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
			return
		}
	}
	t.Fatalf("stirgate serve did not answer OPTIONS on %s", addr)
}
