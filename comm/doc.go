// Package comm is rankhub's rank-to-rank transport: authenticated, framed
// connections over TCP and Unix sockets that move raw buffers without copying.
//
// A Frame is a 32-byte header (magic, version, type, flags, source, buffer
// count, message id, control length), the buffer lengths, a small control
// payload encoded by the layer above, and then the raw buffers. Send writes
// all of it with one gathered write (net.Buffers, i.e. writev) straight from
// the caller's buffers, so slices of Arrow arrays go out with no user-space
// copy. Recv reads the header and control through a small buffered reader and
// the buffers into one Align-aligned allocation from the connection's
// Allocator; the frame's Buffers alias it and Release hands it back.
// RecvInto lets the reader name, from a frame's header and control, where its
// buffers land instead (a Place: a collective's relay reads a segment
// straight into the array it assembles and forwards it from there).
//
// Before any frame is read, both sides prove knowledge of the per-job 256-bit
// key with an HMAC-SHA256 challenge-response (see auth.go). Frames announcing
// more than the Limits are refused before anything is allocated; any malformed
// frame closes the connection (Recv's error names the peer, for the owner's
// log). Memory follows the bytes that
// arrive, not the bytes announced: at most RecvStep (32 MiB) of a frame's
// buffers and 1 MiB of its control payload are allocated before they arrive,
// and the buffers grow as they do (without a copy when the Allocator is a
// Grower, as the collective mesh's RecvPool is). The limit on a frame's
// buffers defaults to half the machine's memory, or $RANKHUB_MAX_FRAME, or
// Options.Limits.MaxBytes. Heartbeats: an idle connection sends a ping
// every Options.Heartbeat, and a peer silent for HeartbeatMisses intervals is
// declared dead (Recv returns ErrHeartbeat).
//
// Unauthenticated peers are bounded per listening socket: a budget of
// connections in their handshake at once (ListenConfig.Handshakes, by
// default an eighth of the open-file limit within [64, MaxHandshakes]; when
// it is spent the oldest silent one of at least EvictAfter makes room for a
// newcomer) and 2 s to prove the key (DefaultHandshakeTimeout).
//
// TLS: a listener with ListenConfig.TLS (TLSAllow or TLSRequire) serves TLS
// 1.3 on its TCP socket with a self-signed ECDSA certificate made at listen
// time; Listener.TLSFingerprint goes into the 0600 connection file
// (ConnInfo.TLS) and a dialer passes it as Options.TLSFingerprint, which
// pins the certificate. The HMAC handshake runs inside TLS. One listener
// serves TLS and plain peers (TLSAllow) by the first byte a peer sends.
//
// Usage:
//
//	key, _ := comm.NewKey()
//	ln, _ := comm.Listen(comm.ListenConfig{TCP: "127.0.0.1:0", Key: key})
//	go func() {
//		c, _ := ln.Accept()
//		f, _ := c.Recv()
//		defer f.Release()
//		// use f.Control, f.Buffers
//	}()
//	c, _ := comm.Dial(ctx, "tcp", ln.TCPAddr(), key, comm.Options{})
//	c.Send(&comm.Frame{Type: comm.TypeUser, Control: ctrl, Buffers: [][]byte{data}})
package comm
