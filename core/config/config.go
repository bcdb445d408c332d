// Package config reads stirgate's TOML configuration into each package's
// Options. Core packages never import it.
//
// Unknown keys are errors (a misspelt "requre_identity" must not silently
// leave verification lax), syntax errors carry line and column, durations
// are strings, and Validate reports every problem at once.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Config is the whole file. Each surface owns its section's type, in a
// file of its own in this package (agi.go, ami.go, http.go, sip.go), so
// that surfaces evolve without touching each other.
type Config struct {
	Log    Log    `toml:"log"`
	Lab    Lab    `toml:"lab"`
	Signer Signer `toml:"signer"`
	// Tenants are further signing credentials (tenant.go); [signer] is
	// the one named "default".
	Tenants  []Tenant `toml:"tenant"`
	Numbers  Numbers  `toml:"numbers"`
	Policy   Policy   `toml:"policy"`
	Verifier Verifier `toml:"verifier"`
	X5U      X5U      `toml:"x5u"`

	AGI   AGI   `toml:"agi"`
	AMI   AMI   `toml:"ami"`
	Store Store `toml:"store"`
	HTTP  HTTP  `toml:"http"`
	// Publish is the public certificate listener (publish.go).
	Publish Publish `toml:"publish"`
	SIP     SIP     `toml:"sip"`
	Node    Node    `toml:"node"`

	// Path is the file the config came from ("" for the embedded default);
	// relative file names inside it are resolved against its directory.
	Path string `toml:"-"`
	// Hash identifies the exact bytes loaded, for reload logs.
	Hash string `toml:"-"`
}

// Log is the [log] section.
type Log struct {
	Level  string `toml:"level"`  // debug, info (default), warn, error
	Format string `toml:"format"` // text (default) or json
}

// Load reads and validates a config file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// Parse decodes TOML text. name is used in messages and to resolve relative
// paths (its directory); give "" for text with no file.
func Parse(data []byte, name string) (*Config, error) {
	c := &Config{Path: name}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d:%d: %s", label(name), pe.Position.Line, pe.Position.Col, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", label(name), err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("%s: unknown key(s): %s", label(name), strings.Join(keys, ", "))
	}
	sum := sha256.Sum256(data)
	c.Hash = hex.EncodeToString(sum[:8])
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", label(name), err)
	}
	return c, nil
}

func label(name string) string {
	if name == "" {
		return "config"
	}
	return name
}

// Default is the embedded configuration `make run` uses: a lab PKI in
// ./.stirgate, signing as the lab's service provider and verifying against
// the lab's anchor, with the certificate served on loopback.
func Default() *Config {
	c := &Config{Lab: Lab{Dir: ".stirgate"}}
	c.Policy.Default = "C"
	c.Hash = "default"
	return c
}

// Validate reports every problem of every section, joined.
func (c *Config) Validate() error {
	return errors.Join(
		c.Log.Validate(),
		c.Lab.Validate(),
		c.Signer.Validate(),
		c.validateTenants(),
		c.Numbers.Validate(),
		c.Policy.Validate(),
		c.Verifier.Validate(),
		c.X5U.Validate(),
		validateSection(c.AGI),
		validateSection(c.AMI),
		validateSection(c.Store),
		validateSection(c.HTTP),
		validateSection(c.SIP),
		c.Publish.Validate(),
		c.exposure(),
		validateSection(c.Node),
	)
}

// validateSection lets surface sections opt in to validation.
func validateSection(s any) error {
	if v, ok := s.(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}

// Validate checks the [log] section.
func (l Log) Validate() error {
	var errs []error
	switch l.Level {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level %q: want debug, info, warn or error", l.Level))
	}
	switch l.Format {
	case "", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format %q: want text or json", l.Format))
	}
	return errors.Join(errs...)
}

// Resolve makes a config-relative path absolute against the config's
// directory; "" stays "".
func (c *Config) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Path == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.Path), p)
}

// NewLogger builds the process logger that [log] describes, writing to w.
// Every surface uses it, so levels and formats mean the same everywhere.
func (l Log) NewLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	switch l.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	o := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}
