package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// lan is a private network of hosts, each a network namespace with one
// veth into a bridge that lives in a namespace of its own. Nothing touches
// the machine's own namespace: the test talks to the hosts by entering
// their namespace on a locked thread (inNS), and every command it runs on a
// host is prefixed with `ip netns exec`.
type lan struct {
	prefix string            // namespace name prefix, unique per run
	hosts  map[string]string // host name → address
}

// newLAN creates the bridge namespace and one namespace per host, with
// addresses 10.250.0.N/24 from addrs. t.Cleanup deletes them all (which
// deletes their veths).
func newLAN(t *testing.T, addrs map[string]string) *lan {
	t.Helper()
	l := &lan{prefix: fmt.Sprintf("sg%d-", os.Getpid()%100000), hosts: addrs}
	br := l.ns("br")
	ip(t, "netns", "add", br)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", br).Run() })
	ip(t, "-n", br, "link", "add", "br0", "type", "bridge")
	ip(t, "-n", br, "link", "set", "br0", "up")
	i := 0
	for h, addr := range addrs {
		i++
		ns := l.ns(h)
		ip(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		port := fmt.Sprintf("p%d", i)
		ip(t, "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", br)
		ip(t, "-n", br, "link", "set", port, "master", "br0", "up")
		ip(t, "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		ip(t, "-n", ns, "link", "set", "eth0", "up")
		ip(t, "-n", ns, "link", "set", "lo", "up")
	}
	return l
}

func (l *lan) ns(host string) string { return l.prefix + host }

// cmd runs name on host.
func (l *lan) cmd(host, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.ns(host), name}, args...)...)
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// inNS runs fn on an OS thread moved into host's namespace. Sockets that
// fn creates stay in that namespace whichever thread uses them later. The
// thread is never moved back: the goroutine ends locked, so the runtime
// discards it.
func (l *lan) inNS(host string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + l.ns(host))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", host, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// dialer dials from inside host's namespace.
func (l *lan) dialer(host string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = l.inNS(host, func() error {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}
