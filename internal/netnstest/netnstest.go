// Package netnstest gives tests two network namespaces joined by a veth
// pair: two hosts as far as the network goes, on one machine. It needs root
// and iproute2's ip; without them the test is skipped loudly, or fails when
// RANKHUB_REQUIRE_NETNS=1 (CI).
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Pair is two namespaces A and B, with veth ends VethA (address AddrA) in A
// and VethB (AddrB) in B, both up with their loopback.
type Pair struct {
	IP           string // the ip command's path
	NSA, NSB     string
	VethA, VethB string
	AddrA, AddrB string
}

// Exec is the argv prefix that runs a command inside namespace ns.
func (p *Pair) Exec(ns string) []string { return []string{p.IP, "netns", "exec", ns} }

// New makes the pair, named prefix+"a"/"b" and the test process's pid, with
// addresses net+".1" and net+".2" (net such as "10.232.0"); the namespaces
// are deleted at the end of the test.
func New(t *testing.T, prefix, net string) *Pair {
	t.Helper()
	skip := func(why string) {
		t.Helper()
		if os.Getenv("RANKHUB_REQUIRE_NETNS") == "1" {
			t.Fatalf("netns test required (RANKHUB_REQUIRE_NETNS=1) but %s", why)
		}
		t.Skipf("SKIPPING the network-namespace test: %s (set RANKHUB_REQUIRE_NETNS=1 to fail instead)", why)
	}
	if os.Geteuid() != 0 {
		skip("not root")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		skip("`ip` (iproute2) is not installed")
	}
	suffix := fmt.Sprintf("%d", os.Getpid()%100000)
	p := &Pair{IP: ipPath, NSA: prefix + "a" + suffix, NSB: prefix + "b" + suffix, AddrA: net + ".1", AddrB: net + ".2"}
	p.VethA, p.VethB = p.NSA, p.NSB
	ip := func(args ...string) error {
		out, err := exec.Command(ipPath, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	t.Cleanup(func() {
		ip("netns", "del", p.NSA)
		ip("netns", "del", p.NSB)
	})
	for _, s := range [][]string{
		{"netns", "add", p.NSA}, {"netns", "add", p.NSB},
		{"link", "add", p.VethA, "type", "veth", "peer", "name", p.VethB},
		{"link", "set", p.VethA, "netns", p.NSA}, {"link", "set", p.VethB, "netns", p.NSB},
		{"-n", p.NSA, "addr", "add", p.AddrA + "/24", "dev", p.VethA}, {"-n", p.NSB, "addr", "add", p.AddrB + "/24", "dev", p.VethB},
		{"-n", p.NSA, "link", "set", p.VethA, "up"}, {"-n", p.NSB, "link", "set", p.VethB, "up"},
		{"-n", p.NSA, "link", "set", "lo", "up"}, {"-n", p.NSB, "link", "set", "lo", "up"},
	} {
		if err := ip(s...); err != nil {
			skip(err.Error())
		}
	}
	return p
}
