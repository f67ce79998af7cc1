package comm

import "golang.org/x/sys/unix"

// lowatOK: this system honours SO_RCVLOWAT in poll and in the wake-ups of
// a TCP socket's reader.
const lowatOK = true

// setRcvLowat sets the socket's receive low-water mark to v bytes.
func setRcvLowat(fd uintptr, v int) error {
	return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT, v)
}

// unread returns the bytes received on the socket and not yet read.
func unread(fd uintptr) (int, error) { return unix.IoctlGetInt(int(fd), unix.SIOCINQ) }
