package rankhub

import (
	"runtime"

	"github.com/rankhub/rankhub/internal/buildinfo"
)

// Version is rankhub's release version.
var Version = buildinfo.Version

// BuildInfo returns version, revision and Go version. The revision is the
// one the Makefile stamps into internal/buildinfo (result files record the
// same), else what the Go build information says, else "unknown".
func BuildInfo() (version, revision, goVersion string) {
	_, rev := buildinfo.Get()
	if rev == "" {
		rev = "unknown"
	}
	return Version, rev, runtime.Version()
}
