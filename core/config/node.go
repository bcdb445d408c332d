package config

import (
	"fmt"
	"os"
)

// Node is the [node] section: this process's identity in a cluster.
type Node struct {
	// Name is recorded with every outcome this node writes (the System
	// column) and shown per node on the dashboard; default the host name.
	Name string `toml:"name"`
}

// WithDefaults returns a copy with Name set to the host name when empty.
func (n Node) WithDefaults() Node {
	if n.Name == "" {
		if h, err := os.Hostname(); err == nil {
			n.Name = h
		}
	}
	return n
}

// Validate checks the [node] section.
func (n Node) Validate() error {
	if len(n.Name) > 128 {
		return fmt.Errorf("node.name: %d bytes, at most 128", len(n.Name))
	}
	return nil
}
