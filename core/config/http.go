package config

// HTTP is the [http] section.
type HTTP struct{}
