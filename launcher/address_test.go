package launcher

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rankhub/rankhub/comm"
)

func ipnet(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

// debianMultiHomed is node n1 of scripts/slurm-multi.sh: its host name maps
// to 127.0.1.1 (Debian's default), and a second interface, on a network no
// other node reaches, comes first.
func debianMultiHomed() NetView {
	return NetView{
		Hostname: "n1",
		Ifaces: []Iface{
			{Name: "lo", Up: true, Addrs: []*net.IPNet{ipnet("127.0.0.1/8")}},
			{Name: "eth1", Up: true, Addrs: []*net.IPNet{ipnet("10.232.0.11/24"), ipnet("fe80::1/64")}},
			{Name: "eth0", Up: true, Addrs: []*net.IPNet{ipnet("fe80::2/64"), ipnet("10.231.0.11/24")}},
		},
		LookupHost: func(h string) ([]string, error) {
			switch h {
			case "n1":
				return []string{"127.0.1.1"}, nil
			case "n2":
				return []string{"10.231.0.12"}, nil
			}
			return nil, errors.New("no such host")
		},
		RouteSource: func(dst net.IP) (net.IP, error) {
			switch {
			case ipnet("10.231.0.0/24").Contains(dst):
				return net.ParseIP("10.231.0.11"), nil
			case ipnet("10.232.0.0/24").Contains(dst):
				return net.ParseIP("10.232.0.11"), nil
			}
			return nil, errors.New("network is unreachable")
		},
	}
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestChooseAddr(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  func(string) string
		view func(NetView) NetView
		want string
	}{
		{"launch node is this one", env("SLURM_LAUNCH_NODE_IPADDR", "10.231.0.11"), nil, "10.231.0.11"},
		{"route to the launch node", env("SLURM_LAUNCH_NODE_IPADDR", "10.231.0.13"), nil, "10.231.0.11"},
		{"route to another node of SLURM_JOB_NODELIST", env("SLURM_JOB_NODELIST", "n[1-2]"), nil, "10.231.0.11"},
		{"nodes that do not resolve: next rule", env("SLURM_JOB_NODELIST", "n1,x[7-9]"), func(v NetView) NetView { v.DefaultIface = "eth0"; return v }, "10.231.0.11"},
		{"network by interface", env("RANKHUB_NETWORK", "eth1", "SLURM_LAUNCH_NODE_IPADDR", "10.231.0.13"), nil, "10.232.0.11"},
		{"network by CIDR", env("RANKHUB_NETWORK", "10.232.0.0/16"), nil, "10.232.0.11"},
		{"default route", env(), func(v NetView) NetView { v.DefaultIface = "eth0"; return v }, "10.231.0.11"},
		{"never 127.0.1.1: first interface up", env(), nil, "10.232.0.11"},
		{"host name when not loopback", env(), func(v NetView) NetView {
			v.LookupHost = func(string) ([]string, error) { return []string{"10.231.0.11"}, nil }
			return v
		}, "10.231.0.11"},
		{"unreachable launch node: next rule", env("SLURM_LAUNCH_NODE_IPADDR", "192.0.2.1"), func(v NetView) NetView { v.DefaultIface = "eth0"; return v }, "10.231.0.11"},
		{"no address but loopback", env(), func(v NetView) NetView { v.Ifaces = v.Ifaces[:1]; return v }, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := debianMultiHomed()
			if tc.view != nil {
				v = tc.view(v)
			}
			got, err := ChooseAddr(v, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if got.IP != tc.want {
				t.Errorf("ChooseAddr = %+v, want %s", got, tc.want)
			}
		})
	}
}

func TestChooseAddrNetworkErrors(t *testing.T) {
	for _, tc := range []struct{ network, want string }{
		{"eth7", "RANKHUB_NETWORK=eth7: node n1 has no such interface: eth0 [fe80::2/64 10.231.0.11/24], eth1"},
		{"10.9.0.0/16", "RANKHUB_NETWORK=10.9.0.0/16: no address of this node (n1) is in that network"},
		{"10.9.0.0/99", `RANKHUB_NETWORK="10.9.0.0/99" is not a network in CIDR form`},
	} {
		_, err := ChooseAddr(debianMultiHomed(), env("RANKHUB_NETWORK", tc.network))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("RANKHUB_NETWORK=%s: err = %v, want one with %q", tc.network, err, tc.want)
		}
	}
}

func TestUnderScheduler(t *testing.T) {
	for _, k := range []string{"SLURM_JOB_ID", "PBS_JOBID", "PBS_NODEFILE", "PBS_ENVIRONMENT"} {
		if !UnderScheduler(env(k, "x")) {
			t.Errorf("%s set: not seen as a scheduler job", k)
		}
	}
	if UnderScheduler(env("HOME", "/root")) {
		t.Error("no scheduler variable, yet seen as a scheduler job")
	}
}

// TestOversubscribed: heartbeats and handshakes tolerate long waits from 8
// ranks per core on (spinning is ViewsSpinFor's, TestViewsSpinFor); a job
// that fits the cores keeps its options.
func TestOversubscribed(t *testing.T) {
	cores := runtime.NumCPU()
	procs := runtime.GOMAXPROCS(0)
	base := comm.Options{Spin: 100 * time.Microsecond, HeartbeatMisses: 5}
	fits := max(1, cores/procs)
	if got := Oversubscribed(base, fits); got.Spin != base.Spin || got.HeartbeatMisses != 5 || got.HandshakeTimeout != 0 {
		t.Errorf("%d ranks of %d threads on %d cores: %+v, want the options unchanged", fits, procs, cores, got)
	}
	huge := 1025 * cores / procs
	got := Oversubscribed(base, huge)
	if got.Spin != base.Spin || got.HeartbeatMisses != 60 || got.HandshakeTimeout != 2*time.Minute {
		t.Errorf("%d ranks on %d cores: %+v, want the spin left to the caller (ViewsSpinFor), 60 misses, 2m handshakes", huge, cores, got)
	}
}

// TestChooseAddrPBSNodefile: under PBS the other nodes come from
// PBS_NODEFILE.
func TestChooseAddrPBSNodefile(t *testing.T) {
	p := t.TempDir() + "/nodes"
	if err := os.WriteFile(p, []byte("n1\nn1\nn2\nn2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ChooseAddr(debianMultiHomed(), env("PBS_NODEFILE", p))
	if err != nil || got.IP != "10.231.0.11" || got.Rule != "route to node n2" {
		t.Errorf("ChooseAddr = %+v, %v; want 10.231.0.11 by the route to n2", got, err)
	}
}

// TestListenHubUnderPBS: a rank started by pbs_tmrsh may see no PBS_JOBID
// and be taken for a local run; the hub then listened on 127.0.0.1 and the
// engines on other nodes could not connect. PBS_NODEFILE (or
// PBS_ENVIRONMENT) says it runs under PBS: the hub advertises a node
// address instead.
func TestListenHubUnderPBS(t *testing.T) {
	for _, k := range []string{"SLURM_JOB_ID", "PBS_JOBID", "PBS_ENVIRONMENT", EnvNetwork, "SLURM_LAUNCH_NODE_IPADDR", "SLURM_JOB_NODELIST"} {
		t.Setenv(k, "")
	}
	t.Setenv("PBS_NODEFILE", filepath.Join(t.TempDir(), "nodes"))
	if a, _ := ChooseAddr(HostNet(), os.Getenv); a.IP == "127.0.0.1" {
		t.Skip("SKIPPING: this machine has no address but loopback")
	}
	ep, err := ListenHub(Identity{Rank: 0, Size: 2, JobDir: t.TempDir(), Source: "rankhub"}, "127.0.0.1", comm.Options{}, comm.TLSAllow)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	if host, _, _ := net.SplitHostPort(ep.Info.TCP); host == "127.0.0.1" {
		t.Errorf("under PBS (PBS_NODEFILE set) the hub advertises %s: engines on other nodes cannot reach it", ep.Info.TCP)
	}
}
