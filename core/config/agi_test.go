package config

import (
	"strings"
	"testing"
	"time"
)

func TestAGISection(t *testing.T) {
	c, err := Parse([]byte("[agi]\nlisten = \"0.0.0.0:4573\"\nallow = [\"192.0.2.0/24\"]\nmax_sessions_per_source = 20\nsession_timeout = \"3s\"\nmax_sessions = 10\nsystem = \"pbx1\"\nmetrics_listen = \"127.0.0.1:9574\"\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	a := c.AGI.WithDefaults()
	if a.Listen != "0.0.0.0:4573" || a.SessionTimeout.Duration != 3*time.Second || a.MaxSessions != 10 ||
		a.MaxSessionsPerSource != 20 || len(a.Allow) != 1 ||
		a.System != "pbx1" || a.MetricsListen != "127.0.0.1:9574" || a.ShutdownGrace.Duration != DefaultAGIShutdownGrace {
		t.Fatalf("AGI = %+v", a)
	}
	d := AGI{}.WithDefaults()
	if d.Listen != DefaultAGIListen || d.SessionTimeout.Duration != DefaultAGISessionTimeout || d.MaxSessions != DefaultAGIMaxSessions ||
		d.MaxSessionsPerSource != DefaultAGIMaxSessions/2 || len(d.Allow) != 0 {
		t.Fatalf("defaults = %+v", d)
	}

	tests := []struct {
		name, toml, want string
	}{
		{"bad listen", "[agi]\nlisten = \"4573\"\n", "agi.listen"},
		{"bad metrics listen", "[agi]\nmetrics_listen = \"9574\"\n", "agi.metrics_listen"},
		{"tiny timeout", "[agi]\nsession_timeout = \"1ms\"\n", "agi.session_timeout"},
		{"negative sessions", "[agi]\nmax_sessions = -1\n", "agi.max_sessions"},
		{"integer duration", "[agi]\nsession_timeout = 10\n", "duration must be a string"},
		{"unknown key", "[agi]\nlisten_port = 4573\n", "listen_port"},
		{"negative per source", "[agi]\nmax_sessions_per_source = -1\n", "agi.max_sessions_per_source"},
		{"bad allow", "[agi]\nallow = [\"10.0.0.0/33\"]\n", "agi.allow"},
		{"exposed without allow", "[agi]\nlisten = \"0.0.0.0:4573\"\n", "set agi.allow"},
		{"all interfaces without allow", "[agi]\nlisten = \":4573\"\n", "set agi.allow"},
		{"lan address without allow", "[agi]\nlisten = \"192.0.2.5:4573\"\n", "agi.listen \"192.0.2.5:4573\" is not a loopback address"},
	}
	for _, ok := range []string{"127.0.0.1:4573", "[::1]:4573", "localhost:4573", "127.0.0.2:4573"} {
		if err := (AGI{Listen: ok}).CheckExposure(); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.toml), "t.toml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
