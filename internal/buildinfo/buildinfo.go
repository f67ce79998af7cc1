// Package buildinfo holds rankhub's version and the VCS revision it was
// built from, for `rankhub version` and for the provenance of result files.
//
// The Makefile stamps Revision into every binary it builds:
//
//	go build -ldflags "-X github.com/rankhub/rankhub/internal/buildinfo.Revision=$(git rev-parse HEAD)"
//
// so the revision is known whatever GOFLAGS says (-buildvcs=false leaves
// the Go build information without one). Without the stamp, Get falls back
// to the build information: the VCS revision of a build inside the
// repository, or the module version (which names the commit) of a program
// that requires rankhub as a dependency.
package buildinfo

import "runtime/debug"

// Version is rankhub's release version.
var Version = "0.1.0-dev"

// Revision is the VCS revision, set at build time with -ldflags -X.
var Revision = ""

const module = "github.com/rankhub/rankhub"

// Get returns the version and the revision, "" when nothing records it.
func Get() (version, revision string) {
	if Revision != "" {
		return Version, Revision
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Version, ""
	}
	return Version, fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) string {
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" && bi.Main.Path == module {
		if dirty {
			rev += "-dirty"
		}
		return rev
	}
	for _, d := range bi.Deps {
		if d.Path == module {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
}
