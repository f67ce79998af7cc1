package rankhub

import (
	"runtime"
	"runtime/debug"
)

// Version is rankhub's release version.
var Version = "0.1.0-dev"

// Revision is the VCS revision, set at build time with
// -ldflags "-X github.com/rankhub/rankhub.Revision=<commit>".
var Revision = ""

// BuildInfo returns version, revision and Go version.
func BuildInfo() (version, revision, goVersion string) {
	rev := Revision
	if rev == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					rev = s.Value
				}
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	return Version, rev, runtime.Version()
}
