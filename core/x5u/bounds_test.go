package x5u

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/stir"
)

// TestFetchLimitsFailFast: beyond MaxFetchesPerHost fetches to one host,
// or MaxFetches in all, a miss fails at once with the fetch-failure error
// (436) instead of waiting behind the others; the refusal is not cached,
// and the fetches in flight finish normally. The server's handler blocks
// until the test releases it, so "in flight" is a fact, not a race.
func TestFetchLimitsFailFast(t *testing.T) {
	entered := make(chan string, 16)
	release := make(chan struct{})
	srv := newCertServer(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- r.URL.Path
		<-release
		serve(testPEM)(w, r)
	})
	_, port, _ := strings.Cut(srv.hostPort(), ":")
	c, err := New(Options[*chain]{
		Policy:            Policy{LabHosts: []string{srv.hostPort(), "example.com:" + port}},
		Validate:          (&validator{notAfter: t0.Add(24 * time.Hour)}).Validate,
		Resolver:          &stubResolver{table: map[string][]string{"example.com": {"127.0.0.1"}}},
		RootCAs:           srv.pool(),
		Now:               newClock().Now,
		Timeout:           time.Minute, // the handler is released by the test, never by a deadline
		MaxFetches:        3,
		MaxFetchesPerHost: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := func(p string) string { return srv.URL(p) }
	named := func(p string) string { return "https://example.com:" + port + p }

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	start := func(u string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Get(t.Context(), u)
			errs <- err
		}()
		<-entered // the fetch holds its place now
	}
	start(local("/a"))
	start(local("/b"))

	// A third to the same host: refused at once, no request made.
	_, err = c.Get(t.Context(), local("/c"))
	wantErr(t, err, stir.ErrX5UFetchFailed)
	if e := stir.As(err); e.SIPCode != 436 || !strings.Contains(e.Error(), "max_fetches_per_host") {
		t.Fatalf("err = %v (SIP %d), want a 436 naming max_fetches_per_host", err, e.SIPCode)
	}

	// Another host still has room under MaxFetches.
	start(named("/d"))
	// Now all three global places are taken.
	_, err = c.Get(t.Context(), named("/e"))
	wantErr(t, err, stir.ErrX5UFetchFailed)
	if !strings.Contains(err.Error(), "max_fetches)") {
		t.Fatalf("err = %v, want the global limit named", err)
	}
	if n := srv.requests.Load(); n != 3 {
		t.Fatalf("server saw %d requests, want the 3 admitted", n)
	}
	if st := c.Stats(); st.Throttled != 2 || st.Fetches != 3 || st.Entries != 0 {
		t.Fatalf("stats = %+v, want 2 throttled, 3 fetches, nothing cached yet", st)
	}

	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("admitted fetch failed: %v", err)
		}
	}
	// The refusal was not remembered: the URL is fetched now.
	if _, err := c.Get(t.Context(), local("/c")); err != nil {
		t.Fatalf("refused URL after the flood: %v", err)
	}
}

// TestUsedEntrySurvivesFlood: a chain served from memory stays cached
// while 50 URLs named once each pass through a cache of 10 entries.
func TestUsedEntrySurvivesFlood(t *testing.T) {
	hs := newHarness(t, serve(testPEM), func(o *Options[*chain]) { o.MaxEntries = 10 })
	legit := hs.srv.URL("/legit.pem")
	for range 2 { // a fetch, then a hit
		if _, err := hs.c.Get(t.Context(), legit); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		if _, err := hs.c.Get(t.Context(), hs.srv.URL(fmt.Sprintf("/attacker-%d.pem", i))); err != nil {
			t.Fatal(err)
		}
	}
	before := hs.srv.requests.Load()
	if _, err := hs.c.Get(t.Context(), legit); err != nil {
		t.Fatal(err)
	}
	if hs.srv.requests.Load() != before {
		t.Fatal("the chain in use was evicted by 50 new URLs")
	}
	if st := hs.c.Stats(); st.Entries != 10 || st.Evictions != 41 {
		t.Fatalf("stats = %+v, want 10 entries, 41 evictions", st)
	}
}

// diskUsage counts the cache files in dir and their bytes.
func diskUsage(t *testing.T, dir string) (n int, bytes int64) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if !isEntryName(de.Name()) {
			if de.Name() != lockName {
				t.Errorf("unexpected file %s in the cache dir", de.Name())
			}
			continue
		}
		fi, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		n++
		bytes += fi.Size()
	}
	return n, bytes
}

// padded is a test chain padded to size bytes.
func padded(size int) string {
	return testPEM + strings.Repeat("#", size-len(testPEM))
}

// TestDiskBounded: 300 distinct URLs served over TLS leave at most
// DiskMaxEntries files and DiskMaxBytes bytes, whichever binds first, and
// the newest is among them.
func TestDiskBounded(t *testing.T) {
	body := padded(8 << 10) // ~11 KiB on disk, base64 in JSON
	for _, tt := range []struct {
		name     string
		maxN     int
		maxBytes int64
	}{
		{"entries", 20, 1 << 30},
		{"bytes", 1000, 100 << 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			hs := newHarness(t, serve(body, "Cache-Control", "max-age=3600"), func(o *Options[*chain]) {
				o.Dir, o.DiskMaxEntries, o.DiskMaxBytes = dir, tt.maxN, tt.maxBytes
			})
			var last string
			for i := range 300 {
				last = hs.srv.URL(fmt.Sprintf("/c%d.pem", i))
				if _, err := hs.c.Get(t.Context(), last); err != nil {
					t.Fatal(err)
				}
			}
			n, b := diskUsage(t, dir)
			if n > tt.maxN || b > tt.maxBytes || n == 0 {
				t.Fatalf("%d files, %d bytes on disk; bounds %d files, %d bytes", n, b, tt.maxN, tt.maxBytes)
			}
			if _, err := os.Stat(diskFile(dir, last)); err != nil {
				t.Fatalf("the newest entry is not on disk: %v", err)
			}
			t.Logf("300 URLs: %d files, %d bytes on disk; %d removed", n, b, hs.c.Stats().DiskRemoved)
		})
	}
}

// TestDiskExpiredRemoved: an expired file is removed by the next write,
// and by a Cache starting on the directory; leftover temporary files of a
// crashed writer go too.
func TestDiskExpiredRemoved(t *testing.T) {
	dir := t.TempDir()
	hs := newHarness(t, serve(testPEM, "Cache-Control", "max-age=60"), func(o *Options[*chain]) { o.Dir = dir })
	a, b := hs.srv.URL("/a.pem"), hs.srv.URL("/b.pem")
	if _, err := hs.c.Get(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".x5u-crashed.tmp"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	hs.clock.Advance(time.Minute)
	if _, err := hs.c.Get(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(diskFile(dir, a)); !os.IsNotExist(err) {
		t.Fatalf("expired file still there (%v)", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".x5u-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	if n, _ := diskUsage(t, dir); n != 1 {
		t.Fatalf("%d files, want b's only", n)
	}

	// A new Cache, later: b has expired too, and goes at start.
	clock := newClock()
	clock.Advance(3 * time.Minute)
	c, err := New(Options[*chain]{Validate: hs.v.Validate, Now: clock.Now, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, _ := diskUsage(t, dir); n != 0 || c.Stats().DiskRemoved != 1 {
		t.Fatalf("%d files left, %d removed; want the expired one removed at start", n, c.Stats().DiskRemoved)
	}
}

// TestDiskReadBackKeepsEntry: a file read back by another process counts
// as used: the oldest unused file goes first.
func TestDiskReadBackKeepsEntry(t *testing.T) {
	dir := t.TempDir()
	hs := newHarness(t, serve(testPEM, "Cache-Control", "max-age=3600"), func(o *Options[*chain]) {
		o.Dir, o.DiskMaxEntries = dir, 3
	})
	urls := []string{hs.srv.URL("/0"), hs.srv.URL("/1"), hs.srv.URL("/2"), hs.srv.URL("/3")}
	for _, u := range urls[:3] {
		hs.c.Get(t.Context(), u)
		hs.clock.Advance(time.Second)
	}
	// A sibling reads /0 back from disk: it becomes the most recent.
	sib, err := New(Options[*chain]{Policy: Policy{LabHosts: []string{hs.srv.hostPort()}}, Validate: hs.v.Validate, Now: hs.clock.Now, Dir: dir, Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sib.Close()
	if _, err := sib.Get(t.Context(), urls[0]); err != nil {
		t.Fatal(err)
	}
	hs.clock.Advance(time.Second)
	hs.c.Get(t.Context(), urls[3])
	if _, err := os.Stat(diskFile(dir, urls[0])); err != nil {
		t.Fatalf("the file read back was evicted: %v", err)
	}
	if _, err := os.Stat(diskFile(dir, urls[1])); !os.IsNotExist(err) {
		t.Fatalf("the least recently used file is still there (%v)", err)
	}
}

// TestDiskSharedAccounting: two Caches on one directory (two processes'
// worth of state, each with its own lock file handle) writing at the same
// time leave no more than the bound between them.
func TestDiskSharedAccounting(t *testing.T) {
	dir := t.TempDir()
	srv := newCertServer(t, serve(testPEM, "Cache-Control", "max-age=3600"))
	mk := func() *Cache[*chain] {
		c, err := New(Options[*chain]{
			Policy:         Policy{LabHosts: []string{srv.hostPort()}},
			Validate:       (&validator{notAfter: t0.Add(24 * time.Hour)}).Validate,
			RootCAs:        srv.pool(),
			Now:            newClock().Now,
			Dir:            dir,
			DiskMaxEntries: 10,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	caches := []*Cache[*chain]{mk(), mk()}
	var wg sync.WaitGroup
	for i, c := range caches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 30 {
				if _, err := c.Get(t.Context(), srv.URL(fmt.Sprintf("/p%d-%d.pem", i, j))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n, _ := diskUsage(t, dir); n > 10 || n == 0 {
		t.Fatalf("%d files after 60 writes by two caches, bound 10", n)
	}
}

// TestDiskSharedAccountingProcesses: the same with a real second process
// (this test binary, re-executed as diskHelper) writing to the directory
// while this one does.
func TestDiskSharedAccountingProcesses(t *testing.T) {
	dir := t.TempDir()
	srv := newCertServer(t, serve(testPEM, "Cache-Control", "max-age=3600"))
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "X5U_DISK_HELPER=1", "X5U_DISK_DIR="+dir, "X5U_DISK_CA="+ca,
		"X5U_DISK_URL="+srv.URL("/child"), "X5U_DISK_N=40")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := diskHelperCache(t, dir, srv.hostPort(), srv.pool())
	for j := range 40 {
		if _, err := c.Get(t.Context(), srv.URL(fmt.Sprintf("/parent-%d.pem", j))); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper process: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "helper wrote 40") {
		t.Fatalf("helper did not run:\n%s", out.String())
	}
	if n, _ := diskUsage(t, dir); n > 10 || n == 0 {
		t.Fatalf("%d files after 80 writes by two processes, bound 10", n)
	}
}

func diskHelperCache(t *testing.T, dir, hostPort string, roots *x509.CertPool) *Cache[*chain] {
	t.Helper()
	c, err := New(Options[*chain]{
		Policy:         Policy{LabHosts: []string{hostPort}},
		Validate:       (&validator{notAfter: t0.Add(24 * time.Hour)}).Validate,
		RootCAs:        roots,
		Now:            newClock().Now,
		Dir:            dir,
		DiskMaxEntries: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestDiskHelperProcess is the second process of
// TestDiskSharedAccountingProcesses; run alone, it does nothing.
func TestDiskHelperProcess(t *testing.T) {
	if os.Getenv("X5U_DISK_HELPER") != "1" {
		return
	}
	pemBytes, err := os.ReadFile(os.Getenv("X5U_DISK_CA"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	base := os.Getenv("X5U_DISK_URL")
	hostPort := strings.TrimPrefix(base[:strings.LastIndex(base, "/")], "https://")
	n, _ := strconv.Atoi(os.Getenv("X5U_DISK_N"))
	c := diskHelperCache(t, os.Getenv("X5U_DISK_DIR"), hostPort, roots)
	for j := range n {
		if _, err := c.Get(t.Context(), fmt.Sprintf("%s-%d.pem", base, j)); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("helper wrote %d\n", n)
}
