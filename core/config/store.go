package config

// Store is the [store] section.
type Store struct{}
