package config

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written as a string in TOML ("2s", "24h").
// A bare integer is refused: "timeout = 2" is ambiguous between seconds and
// nanoseconds, and guessing wrong turns a 2 s deadline into 2 ns.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler, which BurntSushi/toml
// uses only for TOML strings; integers reach UnmarshalTOML below.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	if v < 0 {
		return fmt.Errorf("duration %q: negative", b)
	}
	d.Duration = v
	return nil
}

// UnmarshalTOML refuses every non-string value with a clear message.
func (d *Duration) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("duration must be a string such as \"2s\", got %T %v", v, v)
	}
	return d.UnmarshalText([]byte(s))
}

// MarshalText writes the canonical string form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }
