package collective

import "hash/fnv"

// Tag layout (64 bits), so that concurrent collectives, user messages and
// sub-communicators never share a tag on one link:
//
//	bits 62-63  class: 0 user point-to-point, 1 collective, 2 arena release, 3 abort
//	bits 40-61  communicator context id (22 bits, derived deterministically)
//	bits  8-39  collective: per-communicator sequence number (32 bits, wraps)
//	bits  0-7   collective: step within the collective
//	bits  0-39  user: the user's tag (MaxTag)
const (
	classUser       = 0
	classCollective = 1
	classRelease    = 2
	classAbort      = 3

	ctxBits = 22
	ctxMask = 1<<ctxBits - 1

	// MaxTag is the largest tag accepted by Comm.Send and Comm.Recv.
	MaxTag = 1<<40 - 1
)

func userTag(ctxID uint32, tag uint64) uint64 {
	return classUser<<62 | uint64(ctxID&ctxMask)<<40 | tag&MaxTag
}

func collTag(ctxID uint32, seq uint32, step uint8) uint64 {
	return classCollective<<62 | uint64(ctxID&ctxMask)<<40 | uint64(seq)<<8 | uint64(step)
}

// releaseTag is the tag of arena release messages: one per world, since
// arenas belong to ranks, not communicators.
func releaseTag() uint64 { return classRelease << 62 }

// abortTag is the tag of abort messages: a rank whose collective failed
// tells every member, so nobody waits for it.
func abortTag() uint64 { return classAbort << 62 }

// collKey identifies one collective: its tag without the step.
func collKey(tag uint64) uint64 { return tag &^ 0xff }

func isCollTag(tag uint64) bool { return tag>>62 == classCollective }

// deriveCtx derives a child context id from the parent's id and values all
// members agree on. Collisions between live communicators are possible in
// principle (22 bits) but harmless unless the two communicators share ranks
// and run collectives with equal sequence numbers at the same time.
func deriveCtx(parent uint32, vals ...int64) uint32 {
	h := fnv.New64a()
	var b [8]byte
	put := func(v uint64) {
		for i := range b {
			b[i] = byte(v >> (8 * i))
		}
		h.Write(b[:])
	}
	put(uint64(parent))
	for _, v := range vals {
		put(uint64(v))
	}
	id := uint32(h.Sum64()) & ctxMask
	if id == 0 {
		id = 1 // 0 is the world
	}
	return id
}
