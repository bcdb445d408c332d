package config

// SIP is the [sip] section.
type SIP struct{}
