package config

// AGI is the [agi] section.
type AGI struct{}
