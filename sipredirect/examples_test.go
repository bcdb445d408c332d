package sipredirect

import (
	"path/filepath"
	"testing"

	"github.com/stirgate/stirgate/core/config"
)

// TestExampleConfigs keeps the shipped examples loadable: every key known,
// every value valid, the listeners and profiles as their READMEs describe.
func TestExampleConfigs(t *testing.T) {
	tests := []struct {
		dir       string
		listeners int
		modes     []string
		profiles  int
	}{
		{"vos3000-redirect", 2, []string{"sign", "verify"}, 0},
		{"sippy", 1, []string{"auto"}, 1},
		{"http-api", 0, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			cfg, err := config.Load(filepath.Join("..", "examples", tc.dir, "stirgate.toml"))
			if err != nil {
				t.Fatal(err)
			}
			s := cfg.SIP.WithDefaults()
			if len(s.Listen) != tc.listeners || len(s.Profiles) != tc.profiles {
				t.Fatalf("%d listeners, %d profiles", len(s.Listen), len(s.Profiles))
			}
			for i, m := range tc.modes {
				if _, err := ParseMode(s.Listen[i].Mode); err != nil || s.Listen[i].Mode != m {
					t.Errorf("listener %d mode %q, want %q", i, s.Listen[i].Mode, m)
				}
			}
			allow, err := config.ParsePrefixes(s.Allow)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := NewHandler(Options{Allow: allow, Contact: s.Contact, Unsigned: s.Unsigned, AttestationHeader: s.AttestationHeader}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
