package config

import (
	"os"
	"strings"
	"testing"
)

func TestNodeDefaultsToHostname(t *testing.T) {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if got := (Node{}).WithDefaults().Name; got != h {
		t.Fatalf("default node name %q, want the host name %q", got, h)
	}
	if got := (Node{Name: "edge-1"}).WithDefaults().Name; got != "edge-1" {
		t.Fatalf("node name %q, want edge-1", got)
	}
	if err := (Node{Name: strings.Repeat("n", 129)}).Validate(); err == nil {
		t.Fatal("a 129-byte node name was accepted")
	}
}
