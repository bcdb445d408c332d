package x5u

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/stir"
)

func diskFile(dir, u string) string {
	sum := sha256.Sum256([]byte(u))
	return filepath.Join(dir, hex.EncodeToString(sum[:])+".json")
}

// TestDiskCacheSurvivesRestart: a second Cache on the same directory (a
// restart, or a sibling Kamailio worker) serves the chain with the server
// gone, after validating the body again.
func TestDiskCacheSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "x5u")
	hs := newHarness(t, serve(testPEM, "Cache-Control", "max-age=3600"), func(o *Options[*chain]) { o.Dir = dir })
	u := hs.srv.URL("/cert.pem")
	if _, err := hs.c.Get(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	hs.c.Close()

	path := diskFile(dir, u)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no disk entry: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("disk entry mode %v, want 0600", fi.Mode().Perm())
	}
	var rec diskRecord
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.URL != u || string(rec.Body) != testPEM || !rec.Fetched.Equal(t0) || !rec.Expires.Equal(t0.Add(time.Hour)) {
		t.Fatalf("disk record = %+v", rec)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".x5u-*")); len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
	hs.srv.Close()

	restart := func(t *testing.T, advance time.Duration, offline bool) (*Cache[*chain], *validator) {
		t.Helper()
		clock := newClock()
		clock.Advance(advance)
		v := &validator{notAfter: t0.Add(30 * 24 * time.Hour)}
		c, err := New(Options[*chain]{
			Policy:   Policy{LabHosts: []string{hs.srv.hostPort()}},
			Validate: v.Validate,
			RootCAs:  hs.srv.pool(),
			Now:      clock.Now,
			Dir:      dir,
			Offline:  offline,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, v
	}

	t.Run("fresh", func(t *testing.T) {
		c, v := restart(t, 30*time.Minute, false)
		for range 2 {
			got, err := c.Get(t.Context(), u)
			if err != nil || got.pem != testPEM {
				t.Fatalf("Get = %v, %v", got, err)
			}
		}
		if st := c.Stats(); st.DiskLoads != 1 || st.Fetches != 0 || st.Hits != 1 || v.calls.Load() != 1 {
			t.Fatalf("stats = %+v, validations %d; want 1 disk load, 0 fetches, 1 validation", st, v.calls.Load())
		}
	})
	t.Run("fresh offline", func(t *testing.T) {
		c, _ := restart(t, 30*time.Minute, true)
		if _, err := c.Get(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("keeps the stored expiry", func(t *testing.T) {
		c, _ := restart(t, 30*time.Minute, true)
		c.Get(t.Context(), u)
		c.now = func() time.Time { return t0.Add(time.Hour) }
		_, err := c.Get(t.Context(), u)
		wantErr(t, err, stir.ErrX5UOffline)
	})
	t.Run("expired", func(t *testing.T) {
		c, v := restart(t, time.Hour, false)
		_, err := c.Get(t.Context(), u)
		wantErr(t, err, stir.ErrX5UFetchFailed) // the server is gone
		if v.calls.Load() != 0 {
			t.Fatal("expired disk entry was validated")
		}
	})
	t.Run("expired offline", func(t *testing.T) {
		c, _ := restart(t, time.Hour, true)
		_, err := c.Get(t.Context(), u)
		wantErr(t, err, stir.ErrX5UOffline)
	})
}

// TestDiskCacheNotTrusted: whatever is in Dir goes through the same checks
// as a network body.
func TestDiskCacheNotTrusted(t *testing.T) {
	const u = "https://cr.example.net/cert.pem"
	exp := t0.Add(time.Hour)
	tests := []struct {
		name string
		rec  any
		raw  string // written instead of rec when set
	}{
		{"good", diskRecord{URL: u, Fetched: t0, Expires: exp, Body: []byte(testPEM)}, ""},
		{"fails validation", diskRecord{URL: u, Fetched: t0, Expires: exp, Body: []byte("REVOKED")}, ""},
		{"other URL's record", diskRecord{URL: "https://cr.example.net/other.pem", Fetched: t0, Expires: exp, Body: []byte(testPEM)}, ""},
		{"empty body", diskRecord{URL: u, Fetched: t0, Expires: exp}, ""},
		{"oversized body", diskRecord{URL: u, Fetched: t0, Expires: exp, Body: make([]byte, DefaultMaxBody+1)}, ""},
		{"malformed JSON", nil, "{not json"},
		{"huge file", nil, string(make([]byte, 2*DefaultMaxBody))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			data := []byte(tt.raw)
			if tt.rec != nil {
				data, _ = json.Marshal(tt.rec)
			}
			if err := os.WriteFile(diskFile(dir, u), data, 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := New(Options[*chain]{Validate: (&validator{notAfter: exp}).Validate, Now: newClock().Now, Dir: dir, Offline: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Get(t.Context(), u)
			if tt.name == "good" {
				wantErr(t, err, nil)
				return
			}
			wantErr(t, err, stir.ErrX5UOffline)
		})
	}
}

// TestDiskExpiryBounded: a disk record cannot keep a value longer than
// MaxTTL from now, or beyond the chain's notAfter, whatever it claims.
func TestDiskExpiryBounded(t *testing.T) {
	const u = "https://cr.example.net/cert.pem"
	dir := t.TempDir()
	data, _ := json.Marshal(diskRecord{URL: u, Fetched: t0, Expires: t0.Add(1000 * time.Hour), Body: []byte(testPEM)})
	if err := os.WriteFile(diskFile(dir, u), data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		notAfter time.Time
		want     time.Time
	}{
		{"MaxTTL", t0.Add(1000 * time.Hour), t0.Add(DefaultMaxTTL)},
		{"notAfter", t0.Add(time.Hour), t0.Add(time.Hour)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Options[*chain]{Validate: (&validator{notAfter: tt.notAfter}).Validate, Now: newClock().Now, Dir: dir, Offline: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Get(t.Context(), u); err != nil {
				t.Fatal(err)
			}
			if got := c.m[u].e.expires; !got.Equal(tt.want) {
				t.Fatalf("expires %v, want %v", got, tt.want)
			}
		})
	}
}
