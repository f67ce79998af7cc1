package collective

import (
	"context"
	"encoding/binary"
	"io"
	"math/rand"
	"net"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// pipeTransport sends every message as a frame over a real net.Pipe per
// pair of ranks, written with one net.Buffers writev straight from the
// caller's buffers; a reader per connection reads each frame's buffers into
// one 64-byte aligned allocation and queues the message.
type pipeTransport struct {
	*LocalTransport // receive queues only
	conns           []net.Conn
	mus             []sync.Mutex
}

func newPipeNetwork(t *testing.T, n int, mem memory.Allocator) []*pipeTransport {
	local := NewLocalNetwork(n, LocalOptions{Alloc: mem})
	pts := make([]*pipeTransport, n)
	for i := range pts {
		pts[i] = &pipeTransport{LocalTransport: local[i], conns: make([]net.Conn, n), mus: make([]sync.Mutex, n)}
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			a, b := net.Pipe()
			pts[i].conns[j], pts[j].conns[i] = a, b
			for _, e := range []struct {
				c        net.Conn
				from, to int
			}{{b, i, j}, {a, j, i}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					readFrames(e.c, local[0].net, e.from, e.to, mem)
				}()
			}
		}
	}
	t.Cleanup(func() {
		for _, p := range pts {
			for _, c := range p.conns {
				if c != nil {
					c.Close()
				}
			}
		}
		wg.Wait()
	})
	return pts
}

func (p *pipeTransport) Send(ctx context.Context, to int, tag uint64, header []byte, bufs [][]byte) error {
	if to == p.Rank() {
		return p.LocalTransport.Send(ctx, to, tag, header, bufs)
	}
	pre := make([]byte, 0, 16+8*len(bufs))
	pre = binary.LittleEndian.AppendUint64(pre, tag)
	pre = binary.LittleEndian.AppendUint32(pre, uint32(len(header)))
	pre = binary.LittleEndian.AppendUint32(pre, uint32(len(bufs)))
	for _, b := range bufs {
		pre = binary.LittleEndian.AppendUint64(pre, uint64(len(b)))
	}
	nb := net.Buffers{pre, header}
	nb = append(nb, bufs...)
	p.mus[to].Lock()
	defer p.mus[to].Unlock()
	_, err := nb.WriteTo(p.conns[to])
	return err
}

func readFrames(c net.Conn, ln *localNet, from, to int, mem memory.Allocator) {
	var pre [16]byte
	for {
		if _, err := io.ReadFull(c, pre[:]); err != nil {
			return
		}
		tag := binary.LittleEndian.Uint64(pre[:])
		hlen := binary.LittleEndian.Uint32(pre[8:])
		nbuf := binary.LittleEndian.Uint32(pre[12:])
		lens := make([]byte, 8*nbuf)
		if _, err := io.ReadFull(c, lens); err != nil {
			return
		}
		header := make([]byte, hlen)
		if _, err := io.ReadFull(c, header); err != nil {
			return
		}
		total := int64(0)
		for i := uint32(0); i < nbuf; i++ {
			total += align64(int64(binary.LittleEndian.Uint64(lens[8*i:])))
		}
		var buf []byte
		if total > 0 {
			buf = mem.Allocate(int(total))
		}
		bufs := make([][]byte, nbuf)
		off := int64(0)
		for i := range bufs {
			n := int64(binary.LittleEndian.Uint64(lens[8*i:]))
			bufs[i] = buf[off : off+n : off+n]
			if _, err := io.ReadFull(c, bufs[i]); err != nil {
				mem.Free(buf)
				return
			}
			off += align64(n)
		}
		m := NewMessage(header, bufs, func() {
			if buf != nil {
				mem.Free(buf)
			}
		})
		_ = ln.enqueue(from, to, tag, m)
	}
}

func TestWirePathOverPipes(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for trial := 0; trial < 6; trial++ {
		p := 2 + rng.Intn(5)
		netMem := memory.NewCheckedAllocator(memory.DefaultAllocator)
		mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
		pts := newPipeNetwork(t, p, netMem)
		dt := testTypes[rng.Intn(len(testTypes))]
		n := rng.Intn(5000)
		xs := inputs(rng, p, dt, n, true)
		want := refReduce(xs, Sum, memory.DefaultAllocator)
		large := []int64{1, 1 << 40}[trial%2]
		w := &testWorld{net: netMem, mem: mem}
		for r := 0; r < p; r++ {
			c, err := New(pts[r], WithAllocator(mem), WithLargeThreshold(large))
			if err != nil {
				t.Fatal(err)
			}
			w.comms = append(w.comms, c)
			w.ts = append(w.ts, pts[r].LocalTransport)
		}
		mustRun(t, w, func(ctx context.Context, c *Comm) error {
			got, err := c.Allreduce(ctx, xs[c.Rank()], Sum)
			if err != nil {
				return err
			}
			defer got.Release()
			if err := sameValues(got, want); err != nil {
				t.Errorf("P=%d %s n=%d pipe allreduce: %v", p, dt, n, err)
			}
			var in arrow.Array
			if c.Rank() == 0 {
				in = xs[0]
			}
			b, err := c.Bcast(ctx, 0, in)
			if err != nil {
				return err
			}
			defer b.Release()
			if err := sameValues(b, xs[0]); err != nil {
				t.Errorf("P=%d pipe bcast: %v", p, err)
			}
			return nil
		})
		w.close(t)
		want.Release()
		release(xs)
	}
}
