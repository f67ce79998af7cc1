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
		b.Run(bc.name, func(b *testing.B) {
			key, _ := comm.NewKey()
			pool := NewRecvPool(2 << 30)
			defer pool.Close()
			opts := comm.Options{Allocator: comm.HeapAllocator}
			if bc.pool {
				opts.Allocator = pool
			}
			ln, err := comm.Listen(comm.ListenConfig{Unix: filepath.Join(b.TempDir(), "s"), Key: key, Opts: opts})
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			c, err := comm.Dial(context.Background(), "unix", ln.UnixAddr(), key, opts)
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
			f := &comm.Frame{Type: comm.TypeUser, Buffers: [][]byte{make([]byte, bc.size)}}
			b.SetBytes(int64(2 * bc.size))
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
		})
	}
}
