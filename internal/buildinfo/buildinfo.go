// Package buildinfo tells which build is running: the module version, the
// VCS revision and the Go release, from runtime/debug.ReadBuildInfo, for
// `stirgate version` and the stirgate_build_info metric.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Info identifies a build. Fields unknown to the binary read "unknown".
type Info struct {
	Version   string // module version ("v1.2.3", "(devel)")
	Revision  string // VCS revision, "-dirty" appended for modified trees
	GoVersion string // "go1.24.1"
}

var (
	once sync.Once
	info Info
)

// Get reads the build information once.
func Get() Info {
	once.Do(func() {
		info = Info{Version: "unknown", Revision: "unknown", GoVersion: runtime.Version()}
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			return
		}
		if bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && info.Revision != "unknown" {
			info.Revision += "-dirty"
		}
	})
	return info
}

// Collector is the gauge stirgate_build_info{version,revision,goversion},
// always 1, for a registry of the caller's.
func Collector() prometheus.Collector {
	i := Get()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "stirgate", Name: "build_info",
		Help: "The running build: module version, VCS revision and Go release (value 1).",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(i.Version, i.Revision, i.GoVersion).Set(1)
	return g
}
