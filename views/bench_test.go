package views

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Benchmarks on real engine processes (the lead's `make bench` runs them):
//
//	go test -run '^$' -bench . -benchtime 1x ./views      (quick look)
//	go test -run '^$' -bench . ./views                    (steady figures)

func init() {
	MustRegister("noop1", func(int) {})
}

// BenchmarkApplyRoundTrip: one no-op apply on one engine, submit to result.
func BenchmarkApplyRoundTrip(b *testing.B) {
	pc := startProcs(b, 1, HubConfig{})
	for _, tc := range []struct {
		name string
		cl   *Client
	}{{"local", pc.cl}, {"remote", pc.connect(b)}} {
		b.Run(tc.name, func(b *testing.B) {
			one := must[*DirectView](b)(tc.cl.View(0))
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := one.ApplySync("noop"); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.ReportMetric(float64(median(lat).Microseconds()), "µs-median")
		})
	}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2]
}

// BenchmarkLoadBalancedMapTiny: 100,000 no-op tasks through the
// load-balanced map on 2 engines, at several chunk sizes.
func BenchmarkLoadBalancedMapTiny(b *testing.B) {
	pc := startProcs(b, 2, HubConfig{})
	const n = 100_000
	xs := make([]int, n)
	for _, chunk := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("chunk=%d", chunk), func(b *testing.B) {
			lb := must[*LoadBalancedView](b)(pc.cl.LoadBalancedView())
			t0 := time.Now()
			for i := 0; i < b.N; i++ {
				out, err := lb.MapSync("noop1", chunk, xs)
				if err != nil || len(out) != n {
					b.Fatalf("%d results, %v", len(out), err)
				}
			}
			b.ReportMetric(float64(n*b.N)/time.Since(t0).Seconds(), "tasks/s")
			pc.cl.PurgeAll()
		})
	}
}

// BenchmarkPushPull: push then pull a float64 slice of 8, 64 and 512 MiB to
// one engine; the raw sub-benchmark is the same-run socket limit (one
// write and one read of the same size over a Unix socket pair).
func BenchmarkPushPull(b *testing.B) {
	pc := startProcs(b, 1, HubConfig{})
	one := must[*DirectView](b)(pc.cl.View(0))
	for _, mib := range []int{8, 64, 512} {
		data := make([]float64, mib<<20/8)
		for i := range data {
			data[i] = float64(i)
		}
		size := int64(mib << 20)
		b.Run(fmt.Sprintf("push/%dMiB", mib), func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				ar, err := one.Push(map[string]any{"x": data})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := ar.Get(-1); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("pull/%dMiB", mib), func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				v, err := one.Get("x")
				if err != nil {
					b.Fatal(err)
				}
				if got := len(v.([]float64)); got != len(data) {
					b.Fatalf("pulled %d values", got)
				}
				pc.cl.PurgeAll() // let the pulled frame go
			}
		})
		b.Run(fmt.Sprintf("raw/%dMiB", mib), func(b *testing.B) {
			b.SetBytes(size)
			rawSocket(b, int(size))
		})
		one.Delete("x")
	}
}

func rawSocket(b *testing.B, size int) {
	ln, err := net.Listen("unix", fmt.Sprintf("@views-raw-%d", time.Now().UnixNano()))
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		buf := make([]byte, size)
		for i := 0; i < b.N; i++ {
			if _, err := io.ReadFull(c, buf); err != nil {
				done <- err
				return
			}
			c.Write([]byte{1})
		}
		done <- nil
	}()
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, size)
	ack := make([]byte, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, ack); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPushArrow: push a float64 Arrow array of 4 KiB to 32 MiB to one
// engine and wait for the answer (the push round trip); pull it back from
// an outside client (engine, hub, client: the hub keeps the frame, the
// client copies into read-only memory below 1 MiB and protects the frame in
// place from 1 MiB). Arrays of a page or more that an engine receives in
// frames are copied into read-only memory once; compare with a build
// without that, interleaved.
func BenchmarkPushArrow(b *testing.B) {
	pc := startProcsWith(b, 1, HubConfig{}, time.Second, 0)
	one := must[*DirectView](b)(pc.cl.View(0))
	oc := pc.connect(b)
	outside := must[*DirectView](b)(oc.View(0))
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20, 32 << 20} {
		x := roRamp(size / 8)
		b.Run(fmt.Sprintf("pull-outside/%dKiB", size>>10), func(b *testing.B) {
			if err := one.Set("x", x); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				v, err := outside.Get("x")
				if err != nil {
					b.Fatal(err)
				}
				if v.(arrow.Array).Len() != size/8 {
					b.Fatal("short array")
				}
				oc.PurgeAll() // the hub's results and this client's
			}
		})
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				ar, err := one.Push(map[string]any{"x": x})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := ar.Get(-1); err != nil {
					b.Fatal(err)
				}
			}
		})
		x.Release()
	}
}
