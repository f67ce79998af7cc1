package collective

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestAbortNoticeCarriesTheKind: a rank that aborts a collective on a type
// mismatch makes it ErrType on the ranks it tells, not only on itself (a
// rank told before it checked its own parts failed with an error that
// errors.Is could not place; seen as TestAllgatherNodeTypeMismatchFailsEveryRank
// failing 2 of 12 runs under -race).
func TestAbortNoticeCarriesTheKind(t *testing.T) {
	for _, kind := range []error{ErrType, ErrArgument, ErrUnknownOp} {
		cause := &PeerError{Op: "allgather", Rank: 3, Peer: 2, Err: fmt.Errorf("%w: rank 2's part is float64", kind)}
		key, err := parseAbort(abortNotice(77, 3, cause))
		if key != 77 || !errors.Is(err, kind) || !strings.Contains(err.Error(), "rank 3 (transport rank) aborted the collective: "+cause.Error()) {
			t.Errorf("%v: key %d, err %v", kind, key, err)
		}
	}
	// A cause of no known kind stays plain text, and so does a notice
	// from a peer that sends no kind byte.
	_, err := parseAbort(abortNotice(5, 1, errors.New("disk on fire")))
	old := binary.AppendUvarint(binary.AppendUvarint(nil, 5), 1)
	old = appendString(old, "collective: unsupported or mismatched data type: x")
	_, errOld := parseAbort(old)
	for _, e := range []error{err, errOld} {
		if e == nil || errors.Is(e, ErrType) || errors.Is(e, ErrArgument) {
			t.Errorf("plain cause: %v", e)
		}
	}
	// A kind byte this version does not know is ignored; a truncated
	// notice is no abort.
	_, err = parseAbort(append(old, 200))
	if err == nil || errors.Is(err, ErrType) {
		t.Errorf("unknown kind: %v", err)
	}
	if k, err := parseAbort(old[:3]); k != 0 || err != nil {
		t.Errorf("truncated notice: %d %v", k, err)
	}
}
