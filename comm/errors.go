package comm

import "errors"

// Errors returned by this package. Callers compare with errors.Is.
var (
	// ErrBadFrame is returned by Recv when a frame header is malformed (bad magic,
	// version, type or lengths). The connection is unusable afterwards.
	ErrBadFrame = errors.New("comm: bad frame")
	// ErrFrameTooLarge is returned by Recv when a frame announces more bytes or
	// buffers than the configured limits, and by Send for such a frame.
	ErrFrameTooLarge = errors.New("comm: frame too large")
	// ErrAuth is returned by Dial and by the listener's handshake when the peer
	// does not prove knowledge of the job key.
	ErrAuth = errors.New("comm: authentication failed")
	// ErrHeartbeat is returned by Recv when nothing arrived from the peer within
	// the heartbeat timeout.
	ErrHeartbeat = errors.New("comm: heartbeat timeout")
	// ErrClosed is returned by Send, Recv and Accept after Close.
	ErrClosed = errors.New("comm: closed")
)
