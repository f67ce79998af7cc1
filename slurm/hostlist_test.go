package slurm

import (
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

func TestExpandHostlist(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"node1", []string{"node1"}},
		{"n[001-004,010],gpu7", []string{"n001", "n002", "n003", "n004", "n010", "gpu7"}},
		{"a[1-2]b[3-4]", []string{"a1b3", "a1b4", "a2b3", "a2b4"}},
		{"n[8-10]", []string{"n8", "n9", "n10"}},
		{"n[08-10]", []string{"n08", "n09", "n10"}},
		{"n[3]", []string{"n3"}},
		{"[1-2]x", []string{"1x", "2x"}},
		{"cn-[1-2].ib,login", []string{"cn-1.ib", "cn-2.ib", "login"}},
		{"n[1,1]", []string{"n1", "n1"}},
		{" vm ", []string{"vm"}},
	} {
		got, err := ExpandHostlist(tc.in)
		if err != nil {
			t.Errorf("ExpandHostlist(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ExpandHostlist(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestExpandHostlistErrors(t *testing.T) {
	for _, in := range []string{
		"n[1-2", "n1-2]", "n[[1]]", "n[]", "n[a-b]", "n[3-1]", "a,,b", ",a", "a,",
		"n[1-]", "n[-2]", "n[1-2-3]", "n[1,,2]", "n[99999999999999999999]", "n[0-99999999]",
		"a b", "n[1-1000][1-1000][1-1000]",
	} {
		got, err := ExpandHostlist(in)
		if err == nil {
			t.Errorf("ExpandHostlist(%q) = %q, want an error", in, got)
			continue
		}
		if !errors.Is(err, ErrHostlist) {
			t.Errorf("ExpandHostlist(%q): error %v does not wrap ErrHostlist", in, err)
		}
	}
}

func TestCompressHostlist(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"vm"}, "vm"},
		{[]string{"n001", "n002", "n003", "n004", "n010", "gpu7"}, "n[001-004,010],gpu7"},
		{[]string{"n8", "n9", "n10"}, "n[8-10]"},
		{[]string{"n08", "n09", "n10"}, "n[08-10]"},
		{[]string{"n09", "n10", "n011"}, "n[09-10,011]"},
		{[]string{"n3", "n1", "n2"}, "n[3,1-2]"},
		{[]string{"a1b3", "a1b4", "a2b3"}, "a1b[3-4],a2b3"},
		{[]string{"cn1.ib", "cn2.ib"}, "cn[1-2].ib"},
	} {
		if got := CompressHostlist(tc.in); got != tc.want {
			t.Errorf("CompressHostlist(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// randomHosts builds host lists in the shapes clusters use: prefixes,
// zero-padded and plain numbers, runs, gaps, repeats and suffixes.
func randomHosts(r *rand.Rand) []string {
	prefixes := []string{"n", "node", "gpu", "cn-", "a1b", "", "login", "x9y"}
	suffixes := []string{"", "", "", ".ib", "-opa", "z"}
	var hosts []string
	for range r.Intn(6) {
		p, s := prefixes[r.Intn(len(prefixes))], suffixes[r.Intn(len(suffixes))]
		width := r.Intn(4)
		v := r.Intn(120)
		for range 1 + r.Intn(12) {
			switch r.Intn(6) {
			case 0:
				v += 2 + r.Intn(5)
			case 1:
				v = r.Intn(1200)
			case 2:
				// repeat
			default:
				v++
			}
			h := p + fmt.Sprintf("%0*d", width, v) + s
			if p == "" && s == "" && r.Intn(2) == 0 {
				h = "host" + h
			}
			hosts = append(hosts, h)
		}
		if r.Intn(4) == 0 {
			hosts = append(hosts, []string{"login", "vm", "head-node"}[r.Intn(3)])
		}
	}
	return hosts
}

func TestHostlistRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(42))
	for i := range 3000 {
		hosts := randomHosts(r)
		c := CompressHostlist(hosts)
		got, err := ExpandHostlist(c)
		if err != nil {
			t.Fatalf("case %d: ExpandHostlist(CompressHostlist(%q) = %q): %v", i, hosts, c, err)
		}
		if len(hosts) == 0 && len(got) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, hosts) {
			t.Fatalf("case %d: round trip of %q through %q gave %q", i, hosts, c, got)
		}
		// And compress is stable on its own output.
		if c2 := CompressHostlist(got); c2 != c {
			t.Fatalf("case %d: compress not stable: %q then %q", i, c, c2)
		}
	}
}

func FuzzExpandHostlist(f *testing.F) {
	for _, s := range []string{"n[001-004,010],gpu7", "a[1-2]b[3-4]", "n[08-10]", "", "x", "n[1-", "a,,b", "[0-9]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 64 {
			return // keep expansions small
		}
		hosts, err := ExpandHostlist(s)
		if err != nil {
			if !errors.Is(err, ErrHostlist) {
				t.Fatalf("error %v does not wrap ErrHostlist", err)
			}
			return
		}
		if len(hosts) > 20000 {
			return
		}
		for _, h := range hosts {
			if h == "" || strings.ContainsAny(h, "[],") {
				return // names the compressor cannot represent
			}
		}
		c := CompressHostlist(hosts)
		again, err := ExpandHostlist(c)
		if err != nil {
			t.Fatalf("ExpandHostlist(%q) = %q; compressed %q does not expand: %v", s, hosts, c, err)
		}
		if !reflect.DeepEqual(again, hosts) {
			t.Fatalf("ExpandHostlist(%q) = %q; compressed to %q, expands to %q", s, hosts, c, again)
		}
	})
}
