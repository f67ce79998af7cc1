package launcher

import (
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/comm"
	"github.com/rankhub/rankhub/jobs"
)

func TestRankSettingsRoundTrip(t *testing.T) {
	in := RankSettings{JobFile: "/j/job.toml", Transport: "tcp", Heartbeat: 250 * time.Millisecond,
		StartTimeout: 30 * time.Second, Spin: -1, LogLevel: "debug", TLS: "all", MaxFrame: 8 << 30}
	env := in.Env()
	out, err := ParseRankSettings(func(k string) string { return env[k] })
	if err != nil || out != in {
		t.Fatalf("%+v %v, want %+v (env %v)", out, err, in, env)
	}
	def, err := ParseRankSettings(func(string) string { return "" })
	if err != nil || def.Heartbeat != time.Second || def.StartTimeout != DefaultStartTimeout || def.Spin != 0 ||
		def.TLS != jobs.TLSClients || def.MaxFrame != 0 {
		t.Fatalf("defaults: %+v %v", def, err)
	}
	if s, _ := ParseRankSettings(func(k string) string { return map[string]string{EnvStartTimeout: "30"}[k] }); s.StartTimeout != 30*time.Second {
		t.Fatalf("seconds: %v", s.StartTimeout)
	}
}

func TestRankSettingsRefuseBadValues(t *testing.T) {
	env := map[string]string{EnvHeartbeat: "1ns", EnvSpin: "fast", EnvTransport: "carrier-pigeon", EnvStartTimeout: "-3s",
		EnvTLS: "maybe", EnvMaxFrame: "lots"}
	_, err := ParseRankSettings(func(k string) string { return env[k] })
	for _, want := range []string{`RANKHUB_HEARTBEAT="1ns" is below the minimum 100ms`, `RANKHUB_SPIN="fast" is not a duration`,
		`RANKHUB_TRANSPORT="carrier-pigeon"`, `RANKHUB_START_TIMEOUT="-3s" is below the minimum 1s`,
		`RANKHUB_TLS="maybe"`, `RANKHUB_MAX_FRAME: size "lots"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// One rule for the views and the mesh: the setting, else spin only when
// the ranks' schedulers fit the cores.
func TestSpinFor(t *testing.T) {
	for _, tc := range []struct {
		spin              time.Duration
		size, procs, cpus int
		want              time.Duration
	}{
		{0, 2, 1, 2, DefaultSpin}, {0, 3, 1, 2, -1}, {0, 513, 1, 2, -1}, {0, 2, 2, 2, -1},
		{-1, 2, 1, 16, -1}, {50 * time.Microsecond, 513, 1, 2, 50 * time.Microsecond},
	} {
		if got := (RankSettings{Spin: tc.spin}).SpinFor(tc.size, tc.procs, tc.cpus); got != tc.want {
			t.Errorf("spin %v, %d ranks × %d procs on %d cpus: %v, want %v", tc.spin, tc.size, tc.procs, tc.cpus, got, tc.want)
		}
	}
}

// A job's tls and max_frame reach every rank's environment (the local and
// the batch launchers both build it from JobSettings).
func TestJobSettingsCarryTLSAndMaxFrame(t *testing.T) {
	job, err := jobs.Parse("t.toml", []byte("[job]\nranks = 2\ntls = \"all\"\nmax_frame = \"512MiB\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	env := JobSettings(job, "/j/job.toml").Env()
	if env[EnvTLS] != "all" || env[EnvMaxFrame] != "536870912" {
		t.Fatalf("env %v", env)
	}
	s, err := ParseRankSettings(func(k string) string { return env[k] })
	if err != nil || !s.RankTLS() || s.HubTLS() != comm.TLSRequire || s.MaxFrame != 512<<20 {
		t.Fatalf("%+v %v", s, err)
	}
	def, _ := jobs.Parse("t.toml", []byte("[job]\nranks = 2\n"))
	d := JobSettings(def, "")
	if d.RankTLS() || d.HubTLS() != comm.TLSAllow || d.Env()[EnvMaxFrame] != "" {
		t.Fatalf("defaults %+v", d)
	}
}

// The hub's and engines' connections spin up to two schedulers per core
// (3 ranks on 2 cores: a hub and two engines), the mesh up to one.
func TestViewsSpinFor(t *testing.T) {
	for _, tc := range []struct {
		spin              time.Duration
		size, procs, cpus int
		views, mesh       time.Duration
	}{
		{0, 2, 1, 2, DefaultSpin, DefaultSpin},
		{0, 3, 1, 2, DefaultSpin, -1},
		{0, 4, 1, 2, DefaultSpin, -1},
		{0, 5, 1, 2, -1, -1},
		{0, 1025, 1, 2, -1, -1},
		{50 * time.Microsecond, 1025, 1, 2, 50 * time.Microsecond, 50 * time.Microsecond},
		{-1, 2, 1, 2, -1, -1},
	} {
		s := RankSettings{Spin: tc.spin}
		if got := s.ViewsSpinFor(tc.size, tc.procs, tc.cpus); got != tc.views {
			t.Errorf("%+v: views spin %v, want %v", tc, got, tc.views)
		}
		if got := s.SpinFor(tc.size, tc.procs, tc.cpus); got != tc.mesh {
			t.Errorf("%+v: mesh spin %v, want %v", tc, got, tc.mesh)
		}
	}
}
