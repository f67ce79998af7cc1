package collective

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Wrapped errors name the rank and call.
var (
	// ErrClosed is returned by every call on a Comm after Close.
	ErrClosed = errors.New("collective: communicator closed")
	// ErrType is returned when an array's data type is not a supported
	// numeric type, or when ranks pass arrays of different types.
	ErrType = errors.New("collective: unsupported or mismatched data type")
	// ErrArgument is returned for a bad root, rank, count, tag or rank list.
	ErrArgument = errors.New("collective: invalid argument")
	// ErrProtocol is returned when a received message cannot be decoded or
	// does not match what the collective expects.
	ErrProtocol = errors.New("collective: protocol error")
	// ErrUnknownOp is returned by LookupOp and reductions for an operation
	// that has no kernel for the array's type.
	ErrUnknownOp = errors.New("collective: unknown reduction op")
	// ErrArenaFull is returned by Arena.Alloc when no free range is large
	// enough.
	ErrArenaFull = errors.New("collective: arena full")
	// ErrUpstream is returned by Recv of a multicast (Multicast) when a rank
	// that was to forward the array failed; the message names it and why.
	ErrUpstream = errors.New("collective: multicast broken upstream")
)

// PeerError reports that a collective failed because of one peer: the
// transport to it failed, or it sent something unexpected.
type PeerError struct {
	Op   string // the collective, e.g. "allreduce"
	Rank int    // this rank
	Peer int    // the peer, in this communicator's numbering
	Err  error
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("collective: %s on rank %d: peer rank %d: %v", e.Op, e.Rank, e.Peer, e.Err)
}

func (e *PeerError) Unwrap() error { return e.Err }
