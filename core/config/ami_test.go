package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestAMIStoreSections(t *testing.T) {
	const doc = `
[ami]
address = "10.0.0.5:5038"
username = "stirgate"
secret = "hunter2"
ping_interval = "2s"
system = "pbx1"

[store]
dsn = "postgres://u:pw@127.0.0.1/stir"
retention_days = 30
`
	var c Config
	if _, err := toml.Decode(doc, &c); err != nil {
		t.Fatal(err)
	}
	a := c.AMI.WithDefaults()
	if a.Address != "10.0.0.5:5038" || a.PingInterval.Duration != 2*time.Second || a.System != "pbx1" || a.Secret.Reveal() != "hunter2" {
		t.Errorf("ami = %+v", a)
	}
	s := c.Store.WithDefaults()
	if s.Driver != "postgres" || s.RetentionDays != 30 || s.SpillPath != DefaultStoreSpillPath {
		t.Errorf("store = %+v", s)
	}
	if err := errorsOf(a.Validate(), s.Validate()); err != "" {
		t.Error(err)
	}

	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("cfg", "ami", a, "store", s, "secret", a.Secret)
	out := buf.String() + fmt.Sprintf("%v %+v %#v %s", a, s, a, s.DSN)
	for _, leak := range []string{"hunter2", "pw@"} {
		if strings.Contains(out, leak) {
			t.Errorf("secret %q leaked: %s", leak, out)
		}
	}
}

func TestAMIStoreDefaults(t *testing.T) {
	a := AMI{}.WithDefaults()
	if a.Address != DefaultAMIAddress || a.PingInterval.Duration != DefaultAMIPingInterval {
		t.Errorf("ami defaults = %+v", a)
	}
	s := Store{}.WithDefaults()
	if s.Driver != "sqlite" || s.Path != DefaultStorePath {
		t.Errorf("store defaults = %+v", s)
	}
}

func TestAMIStoreValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"bad address", AMI{Address: "nohostport"}.Validate()},
		{"tiny ping", AMI{PingInterval: Duration{time.Millisecond}}.Validate()},
		{"unknown driver", Store{Driver: "mysql"}.Validate()},
		{"postgres without dsn", Store{Driver: "postgres"}.Validate()},
		{"negative retention", Store{RetentionDays: -1}.Validate()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Error("accepted")
			}
		})
	}
}

func errorsOf(errs ...error) string {
	var b strings.Builder
	for _, e := range errs {
		if e != nil {
			b.WriteString(e.Error())
		}
	}
	return b.String()
}
