package buildinfo

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollector(t *testing.T) {
	i := Get()
	if i.GoVersion != runtime.Version() || i.Version == "" || i.Revision == "" {
		t.Fatalf("%+v", i)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector())
	want := `# HELP stirgate_build_info The running build: module version, VCS revision and Go release (value 1).
# TYPE stirgate_build_info gauge
stirgate_build_info{goversion="` + i.GoVersion + `",revision="` + i.Revision + `",version="` + i.Version + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "stirgate_build_info"); err != nil {
		t.Fatal(err)
	}
}
