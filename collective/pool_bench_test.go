package collective

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/rankhub/rankhub/comm"
)

// BenchmarkFrameUnix: round trips of one large frame over a Unix socket,
// both ends receiving into a RecvPool (as the mesh does) or the Go heap (as
// the hub and engines do).
func BenchmarkFrameUnix(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
		pool bool
	}{{"pool/64MiB", 64 << 20, true}, {"pool/512MiB", 512 << 20, true}, {"heap/64MiB", 64 << 20, false}, {"heap/512MiB", 512 << 20, false}} {
		b.Run(bc.name, func(b *testing.B) { benchFrame(b, "unix", bc.size, bc.pool, comm.TLSOff) })
	}
}

// BenchmarkFrameTCP: the same over loopback TCP (the mesh's forced-socket
// path) into a RecvPool, plain and with TLS 1.3.
func BenchmarkFrameTCP(b *testing.B) {
	for _, bc := range []struct {
		name string
		mode comm.TLSMode
	}{{"plain/64MiB", comm.TLSOff}, {"tls/64MiB", comm.TLSRequire}} {
		b.Run(bc.name, func(b *testing.B) { benchFrame(b, "tcp", 64<<20, true, bc.mode) })
	}
}

func benchFrame(b *testing.B, network string, size int, usePool bool, mode comm.TLSMode) {
	key, _ := comm.NewKey()
	pool := NewRecvPool(2 << 30)
	defer pool.Close()
	opts := comm.Options{Allocator: comm.HeapAllocator}
	if usePool {
		opts.Allocator = pool
	}
	lc := comm.ListenConfig{Key: key, Opts: opts, TLS: mode}
	if network == "tcp" {
		lc.TCP = "127.0.0.1:0"
	} else {
		lc.Unix = filepath.Join(b.TempDir(), "s")
	}
	ln, err := comm.Listen(lc)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	addr := ln.TCPAddr() + ln.UnixAddr()
	opts.TLSFingerprint = ln.TLSFingerprint()
	c, err := comm.Dial(context.Background(), network, addr, key, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	go func() {
		for {
			f, err := s.Recv()
			if err != nil {
				return
			}
			s.Send(f)
			f.Release()
		}
	}()
	f := &comm.Frame{Type: comm.TypeUser, Buffers: [][]byte{make([]byte, size)}}
	b.SetBytes(int64(2 * size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Send(f); err != nil {
			b.Fatal(err)
		}
		g, err := c.Recv()
		if err != nil {
			b.Fatal(err)
		}
		g.Release()
	}
}
