// Package config reads stirgate's TOML configuration into each package's
// Options. Core packages never import it.
package config

// Config is the whole file. Each surface owns its section's type, in a
// file of its own in this package (agi.go, ami.go, http.go, sip.go,
// cshared.go), so that surfaces evolve without touching each other.
type Config struct {
	AGI   AGI   `toml:"agi"`
	AMI   AMI   `toml:"ami"`
	Store Store `toml:"store"`
	HTTP  HTTP  `toml:"http"`
	SIP   SIP   `toml:"sip"`
}
