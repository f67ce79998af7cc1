package hub

// futureTable holds the hub's futures by message id. The core gives ids
// out in sequence from 1, so the table is a slice from the oldest id still
// held: a lookup is an index, an insert an append, and purging the oldest
// results moves the start. An id purged while an older one is kept leaves
// a nil slot (8 bytes) until the older one goes too.
type futureTable struct {
	base uint64  // the id of ts[0]
	ts   []*Task // nil: purged (or never given out)
}

func (ft *futureTable) get(id uint64) *Task {
	if id < ft.base || id-ft.base >= uint64(len(ft.ts)) {
		return nil
	}
	return ft.ts[id-ft.base]
}

// put adds the future of id (in the core's sequence, above every id
// the table holds; any other id works too, at the cost of a copy).
func (ft *futureTable) put(id uint64, t *Task) {
	if len(ft.ts) == 0 {
		ft.base, ft.ts = id, ft.ts[:0]
	}
	if id < ft.base { // not from the core's sequence; kept all the same
		ft.ts = append(make([]*Task, ft.base-id), ft.ts...)
		ft.base = id
	}
	for uint64(len(ft.ts)) < id-ft.base {
		ft.ts = append(ft.ts, nil)
	}
	if i := id - ft.base; i < uint64(len(ft.ts)) {
		ft.ts[i] = t
		return
	}
	ft.ts = append(ft.ts, t)
}

// drop forgets the future of id.
func (ft *futureTable) drop(id uint64) {
	if id < ft.base || id-ft.base >= uint64(len(ft.ts)) {
		return
	}
	ft.ts[id-ft.base] = nil
	n := 0
	for n < len(ft.ts) && ft.ts[n] == nil {
		n++
	}
	if n > 0 {
		ft.ts = ft.ts[n:]
		ft.base += uint64(n)
	}
}
