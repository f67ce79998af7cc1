package launcher

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"

	"github.com/rankhub/rankhub/pbs"
	"github.com/rankhub/rankhub/slurm"
)

// EnvNetwork names the interface ("eth1", "ib0") or the network in CIDR
// form ("10.1.0.0/16") that the hub and the collective mesh use between
// nodes, as Open MPI's btl_tcp_if_include does. job.network sets it in
// batch scripts; a user may export it.
const EnvNetwork = "RANKHUB_NETWORK"

// NodeAddr is the address a rank advertises to the other nodes, with the
// interface that holds it and the rule that chose it (for the log and
// for error messages).
type NodeAddr struct {
	IP    string
	Iface string
	Rule  string
}

// Iface is one network interface and its addresses, as ChooseAddr sees it.
type Iface struct {
	Name  string
	Up    bool
	Addrs []*net.IPNet
}

// NetView is what ChooseAddr needs to know of the machine; HostNet reads
// the real one. Tests give a fake.
type NetView struct {
	Hostname string
	Ifaces   []Iface
	// LookupHost resolves a host name (the hostname rule).
	LookupHost func(string) ([]string, error)
	// RouteSource returns the source address the kernel would use to
	// reach dst, without sending anything.
	RouteSource func(dst net.IP) (net.IP, error)
	// DefaultIface is the interface of the default route, "" if none.
	DefaultIface string
}

// HostNet reads this machine's interfaces, host name and default route.
func HostNet() NetView {
	v := NetView{LookupHost: net.LookupHost, RouteSource: routeSource, DefaultIface: defaultRouteIface()}
	v.Hostname, _ = os.Hostname()
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		it := Iface{Name: i.Name, Up: i.Flags&net.FlagUp != 0}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				it.Addrs = append(it.Addrs, n)
			}
		}
		v.Ifaces = append(v.Ifaces, it)
	}
	return v
}

// routeSource asks the kernel which source address reaches dst: connecting
// a UDP socket picks a route and sends no packet.
func routeSource(dst net.IP) (net.IP, error) {
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: dst, Port: 9})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP, nil
}

// defaultRouteIface reads the interface of the IPv4 default route from
// /proc/net/route; "" when there is none.
func defaultRouteIface() string {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 2 && fs[1] == "00000000" && fs[0] != "Iface" {
			return fs[0]
		}
	}
	return ""
}

// usable is an address other nodes might reach: IPv4, not loopback (which
// includes Debian's 127.0.1.1 for the host name), not link-local.
func usable(ip net.IP) bool {
	return ip != nil && ip.To4() != nil && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !ip.IsUnspecified()
}

// ifaceOf returns the interface holding ip.
func (v NetView) ifaceOf(ip net.IP) (Iface, bool) {
	for _, it := range v.Ifaces {
		for _, a := range it.Addrs {
			if a.IP.Equal(ip) {
				return it, true
			}
		}
	}
	return Iface{}, false
}

// firstUsable is the interface's first usable address.
func (it Iface) firstUsable() net.IP {
	for _, a := range it.Addrs {
		if usable(a.IP) {
			return a.IP
		}
	}
	return nil
}

func (v NetView) names() string {
	var ns []string
	for _, it := range v.Ifaces {
		var as []string
		for _, a := range it.Addrs {
			as = append(as, a.String())
		}
		ns = append(ns, fmt.Sprintf("%s [%s]", it.Name, strings.Join(as, " ")))
	}
	sort.Strings(ns)
	return strings.Join(ns, ", ")
}

// ChooseAddr picks the address this rank advertises to other nodes, by
// the first rule that applies:
//
//  1. RANKHUB_NETWORK (job.network): the interface of that name, or the
//     address inside that network; an error when none matches.
//  2. What the scheduler says: SLURM_LAUNCH_NODE_IPADDR (the node srun ran
//     on) is this node's address, or the source address of the route to
//     it is.
//  3. The source address of the route to another node of the job, from
//     PBS_NODEFILE or SLURM_JOB_NODELIST (an MPI starter's ranks have no
//     SLURM_LAUNCH_NODE_IPADDR).
//  4. The host name's address, when it is not loopback (Debian maps the
//     host name to 127.0.1.1).
//  5. The interface of the default route.
//  6. The first usable address of any interface that is up.
//
// Loopback and link-local addresses are never chosen (127.0.0.1 is the
// answer only on a machine without any other address).
func ChooseAddr(v NetView, getenv func(string) string) (NodeAddr, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if n := strings.TrimSpace(getenv(EnvNetwork)); n != "" {
		return v.byNetwork(n)
	}
	if s := getenv("SLURM_LAUNCH_NODE_IPADDR"); s != "" && v.RouteSource != nil {
		if ip := net.ParseIP(strings.TrimSpace(s)); usable(ip) {
			if it, ok := v.ifaceOf(ip); ok {
				return NodeAddr{ip.String(), it.Name, "SLURM_LAUNCH_NODE_IPADDR is this node's"}, nil
			}
			if src, err := v.RouteSource(ip); err == nil && usable(src) {
				it, _ := v.ifaceOf(src)
				return NodeAddr{src.String(), it.Name, "route to SLURM_LAUNCH_NODE_IPADDR " + ip.String()}, nil
			}
		}
	}
	if a, ok := v.towardPeers(peerHosts(getenv)); ok {
		return a, nil
	}
	if v.Hostname != "" && v.LookupHost != nil {
		if addrs, err := v.LookupHost(v.Hostname); err == nil {
			for _, a := range addrs {
				ip := net.ParseIP(a)
				if !usable(ip) {
					continue
				}
				if it, ok := v.ifaceOf(ip); ok {
					return NodeAddr{ip.String(), it.Name, "host name " + v.Hostname}, nil
				}
			}
		}
	}
	if v.DefaultIface != "" {
		for _, it := range v.Ifaces {
			if it.Name == v.DefaultIface && it.Up {
				if ip := it.firstUsable(); ip != nil {
					return NodeAddr{ip.String(), it.Name, "default route"}, nil
				}
			}
		}
	}
	for _, it := range v.Ifaces {
		if it.Up {
			if ip := it.firstUsable(); ip != nil {
				return NodeAddr{ip.String(), it.Name, "first interface up"}, nil
			}
		}
	}
	return NodeAddr{"127.0.0.1", "lo", "no other address"}, nil
}

// byNetwork applies RANKHUB_NETWORK: an interface name or a CIDR network.
func (v NetView) byNetwork(n string) (NodeAddr, error) {
	if strings.Contains(n, "/") {
		_, want, err := net.ParseCIDR(n)
		if err != nil {
			return NodeAddr{}, fmt.Errorf("launcher: %s=%q is not a network in CIDR form (e.g. 10.1.0.0/16) nor an interface name", EnvNetwork, n)
		}
		for _, it := range v.Ifaces {
			for _, a := range it.Addrs {
				if want.Contains(a.IP) && a.IP.To4() != nil {
					return NodeAddr{a.IP.String(), it.Name, EnvNetwork + "=" + n}, nil
				}
			}
		}
		return NodeAddr{}, fmt.Errorf("launcher: %s=%s: no address of this node (%s) is in that network: %s", EnvNetwork, n, v.Hostname, v.names())
	}
	for _, it := range v.Ifaces {
		if it.Name != n {
			continue
		}
		for _, a := range it.Addrs {
			if a.IP.To4() != nil && !a.IP.IsLinkLocalUnicast() {
				return NodeAddr{a.IP.String(), it.Name, EnvNetwork + "=" + n}, nil
			}
		}
		return NodeAddr{}, fmt.Errorf("launcher: %s=%s: interface %s of %s has no IPv4 address: %s", EnvNetwork, n, n, v.Hostname, v.names())
	}
	return NodeAddr{}, fmt.Errorf("launcher: %s=%s: node %s has no such interface: %s", EnvNetwork, n, v.Hostname, v.names())
}

// peerHosts lists the job's nodes as the scheduler gives them:
// PBS_NODEFILE (one line per slot), else SLURM_JOB_NODELIST (hostlist
// syntax). Unreadable or malformed lists give none.
func peerHosts(getenv func(string) string) []string {
	if p := getenv("PBS_NODEFILE"); p != "" {
		if hosts, err := pbs.ReadNodefile(p); err == nil {
			return hosts
		}
	}
	if l := getenv("SLURM_JOB_NODELIST"); l != "" {
		if hosts, err := slurm.ExpandHostlist(l); err == nil {
			return hosts
		}
	}
	return nil
}

// towardPeers is rule 3: the source address of the route to the first
// other node that resolves to a usable address. At most 16 distinct hosts
// are looked up.
func (v NetView) towardPeers(hosts []string) (NodeAddr, bool) {
	if v.LookupHost == nil || v.RouteSource == nil {
		return NodeAddr{}, false
	}
	short, _, _ := strings.Cut(v.Hostname, ".")
	seen := map[string]bool{}
	for _, h := range hosts {
		hs, _, _ := strings.Cut(h, ".")
		if seen[h] || hs == short || len(seen) >= 16 {
			continue
		}
		seen[h] = true
		addrs, err := v.LookupHost(h)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ip := net.ParseIP(a)
			if !usable(ip) {
				continue
			}
			if src, err := v.RouteSource(ip); err == nil && usable(src) {
				it, _ := v.ifaceOf(src)
				return NodeAddr{src.String(), it.Name, "route to node " + h}, true
			}
		}
	}
	return NodeAddr{}, false
}
