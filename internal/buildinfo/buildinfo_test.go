package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	for _, c := range []struct {
		bi   debug.BuildInfo
		want string
	}{
		{debug.BuildInfo{Main: debug.Module{Path: module}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}}, "abc"},
		{debug.BuildInfo{Main: debug.Module{Path: module}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}}}, "abc-dirty"},
		{debug.BuildInfo{Main: debug.Module{Path: module}}, ""}, // -buildvcs=false, no stamp
		{debug.BuildInfo{Main: debug.Module{Path: "example.com/sim"}, Deps: []*debug.Module{{Path: module, Version: "v0.0.0-20261130204500-03780cb1a2b3"}}}, "v0.0.0-20261130204500-03780cb1a2b3"},
	} {
		if got := fromBuildInfo(&c.bi); got != c.want {
			t.Errorf("%+v: %q, want %q", c.bi, got, c.want)
		}
	}
	Revision = "stamped"
	defer func() { Revision = "" }()
	if _, rev := Get(); rev != "stamped" {
		t.Errorf("stamped revision: %q", rev)
	}
}
