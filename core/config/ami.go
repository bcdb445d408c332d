package config

// AMI is the [ami] section.
type AMI struct{}
