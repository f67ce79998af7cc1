package collective

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Records travel as one message per record: the schema's field names and
// nullability in the header, one column per field, aux = the row count.
// Chunked arrays travel as one message whose columns are the chunks.

// recordValue views rec as a value without copying.
func recordValue(rec arrow.RecordBatch) (value, error) {
	if rec == nil {
		return value{}, fmt.Errorf("%w: nil record", ErrArgument)
	}
	v := value{kind: kindRecord, aux: rec.NumRows()}
	for i, f := range rec.Schema().Fields() {
		col, err := columnOf(rec.Column(i))
		if err != nil {
			return value{}, fmt.Errorf("record column %d %q: %w", i, f.Name, err)
		}
		v.fields = append(v.fields, fieldMeta{name: f.Name, nullable: f.Nullable})
		v.cols = append(v.cols, col)
	}
	return v, nil
}

// chunkedValue views ch as a value without copying.
func chunkedValue(ch *arrow.Chunked) (value, error) {
	if ch == nil {
		return value{}, fmt.Errorf("%w: nil chunked array", ErrArgument)
	}
	if width(ch.DataType()) == 0 {
		return value{}, fmt.Errorf("%w: %s (want int8..int64, uint8..uint64, float32, float64)", ErrType, ch.DataType())
	}
	v := value{kind: kindChunked, aux: int64(ch.Len())}
	for _, a := range ch.Chunks() {
		col, err := columnOf(a)
		if err != nil {
			return value{}, err
		}
		v.cols = append(v.cols, col)
	}
	return v, nil
}

// gotValue views a received value as one to forward (ring algorithms).
func gotValue(g *got) (value, error) {
	v := value{kind: g.kind, aux: g.aux, fields: g.fields}
	for _, a := range g.arrs {
		col, err := columnOf(a)
		if err != nil {
			return value{}, err
		}
		v.cols = append(v.cols, col)
	}
	return v, nil
}

// schemaOf rebuilds a record schema from a received header.
func schemaOf(fields []fieldMeta, arrs []arrow.Array) *arrow.Schema {
	fs := make([]arrow.Field, len(fields))
	for i, f := range fields {
		fs[i] = arrow.Field{Name: f.name, Type: arrs[i].DataType(), Nullable: f.nullable}
	}
	return arrow.NewSchema(fs, nil)
}

// matches checks a received value against this rank's (kind, field names,
// types); nil when it agrees.
func matches(mine value, g *got) error {
	if g.kind != mine.kind {
		return fmt.Errorf("%w: payload kind %d, this rank has %d", ErrType, g.kind, mine.kind)
	}
	switch mine.kind {
	case kindRecord:
		if len(g.fields) != len(mine.fields) || len(g.arrs) != len(mine.cols) {
			return fmt.Errorf("%w: record with %d fields, this rank has %d", ErrType, len(g.fields), len(mine.fields))
		}
		for i, f := range mine.fields {
			if g.fields[i].name != f.name || !arrow.TypeEqual(g.arrs[i].DataType(), mine.cols[i].dt) {
				return fmt.Errorf("%w: field %d is %q %s, this rank has %q %s", ErrType, i, g.fields[i].name, g.arrs[i].DataType(), f.name, mine.cols[i].dt)
			}
		}
	case kindChunked:
		for _, a := range g.arrs {
			if len(mine.cols) > 0 && !arrow.TypeEqual(a.DataType(), mine.cols[0].dt) {
				return fmt.Errorf("%w: chunk of %s, this rank has %s", ErrType, a.DataType(), mine.cols[0].dt)
			}
		}
	}
	return checkShape(g)
}

// checkShape verifies that a received record's columns all have aux rows.
func checkShape(g *got) error {
	if g.kind != kindRecord {
		return nil
	}
	if len(g.fields) != len(g.arrs) {
		return fmt.Errorf("%w: record with %d fields and %d columns", ErrProtocol, len(g.fields), len(g.arrs))
	}
	for i, a := range g.arrs {
		if int64(a.Len()) != g.aux {
			return fmt.Errorf("%w: record column %d has %d rows, record has %d", ErrProtocol, i, a.Len(), g.aux)
		}
	}
	return nil
}

// toRecord builds a record over a received value and releases g's
// references (the record holds its own).
func toRecord(g *got) arrow.RecordBatch {
	rec := array.NewRecordBatch(schemaOf(g.fields, g.arrs), g.arrs, g.aux)
	g.release()
	return rec
}

// gotRecord checks that g, received from root, is a well-formed record and
// builds it (see toRecord); g is released either way.
func (c *Comm) gotRecord(op string, root int, g *got) (arrow.RecordBatch, error) {
	if g.kind != kindRecord {
		g.release()
		return nil, protoErr(op, c.rank, root, "expected a record")
	}
	if err := checkShape(g); err != nil {
		g.release()
		return nil, &PeerError{Op: op, Rank: c.rank, Peer: root, Err: err}
	}
	return toRecord(g), nil
}

// toChunks returns the received chunks; the caller owns them.
func toChunks(g *got) []arrow.Array {
	a := g.arrs
	g.arrs = nil
	return a
}

// BcastRecord sends root's record to every rank (on root: rec, retained).
// Columns alias the received memory, as Bcast's array does.
func (c *Comm) BcastRecord(ctx context.Context, root int, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	const op = "bcastrecord"
	tag, err := c.nextRooted(op, root)
	if err != nil {
		return nil, err
	}
	var v value
	if c.rank == root {
		if v, err = recordValue(rec); err != nil {
			return nil, c.failColl(tag(0), err)
		}
	}
	g, err := c.bcastValue(ctx, op, root, v, c.bcastShape(), 0, tag)
	if err != nil {
		return nil, err
	}
	if c.rank == root {
		rec.Retain()
		return rec, nil
	}
	return c.gotRecord(op, root, g)
}

// BcastChunked sends root's chunked array to every rank (on root: ch,
// retained), chunk boundaries kept.
func (c *Comm) BcastChunked(ctx context.Context, root int, ch *arrow.Chunked) (*arrow.Chunked, error) {
	const op = "bcastchunked"
	tag, err := c.nextRooted(op, root)
	if err != nil {
		return nil, err
	}
	var v value
	if c.rank == root {
		if v, err = chunkedValue(ch); err != nil {
			return nil, c.failColl(tag(0), err)
		}
		// the type must travel even without chunks
		v.fields = []fieldMeta{{name: fmt.Sprint(int(ch.DataType().ID()))}}
	}
	g, err := c.bcastValue(ctx, op, root, v, c.bcastShape(), 0, tag)
	if err != nil {
		return nil, err
	}
	if c.rank == root {
		ch.Retain()
		return ch, nil
	}
	var id int
	if g.kind != kindChunked || len(g.fields) != 1 {
		g.release()
		return nil, protoErr(op, c.rank, root, "expected a chunked array")
	}
	if _, err := fmt.Sscan(g.fields[0].name, &id); err != nil || typeOf(arrow.Type(id)) == nil {
		g.release()
		return nil, protoErr(op, c.rank, root, "bad chunked type %q", g.fields[0].name)
	}
	dt := typeOf(arrow.Type(id))
	chunks := toChunks(g)
	defer releaseAll(chunks)
	for _, a := range chunks {
		if !arrow.TypeEqual(a.DataType(), dt) {
			return nil, protoErr(op, c.rank, root, "chunk of %s in a chunked array of %s", a.DataType(), dt)
		}
	}
	return arrow.NewChunked(dt, chunks), nil
}

func releaseAll(as []arrow.Array) {
	for _, a := range as {
		if a != nil {
			a.Release()
		}
	}
}

// ScatterRecord partitions root's record by rows and gives rank i rows
// [displ(i), displ(i)+counts[i]); nil counts split evenly (the first
// rows%Size() ranks get one row more). counts and rec matter only on root.
// The parts are slices of root's columns, sent without copying.
func (c *Comm) ScatterRecord(ctx context.Context, root int, rec arrow.RecordBatch, counts []int64) (arrow.RecordBatch, error) {
	const op = "scatterrecord"
	tag, err := c.nextRooted(op, root)
	if err != nil {
		return nil, err
	}
	if c.rank != root {
		g, err := c.recv(ctx, op, root, tag(0))
		if err != nil {
			return nil, err
		}
		return c.gotRecord(op, root, g)
	}
	v, err := recordValue(rec)
	if err != nil {
		return nil, c.failColl(tag(0), err)
	}
	if counts == nil {
		counts = evenCounts(rec.NumRows(), len(c.ranks))
	}
	if err := checkCounts(op, counts, len(c.ranks), rec.NumRows()); err != nil {
		return nil, c.failColl(tag(0), err)
	}
	ds := displs(counts)
	if c.allShm() {
		staged, done := c.stage(v)
		defer done()
		v = staged
	}
	for q := range c.ranks {
		if q == root {
			continue
		}
		part := value{kind: kindRecord, aux: counts[q], fields: v.fields, cols: make([]column, len(v.cols))}
		for i, col := range v.cols {
			part.cols[i] = col.slice(ds[q], ds[q]+counts[q])
		}
		if err := c.send(ctx, op, q, tag(0), part, nil); err != nil {
			return nil, err
		}
	}
	return rec.NewSlice(ds[root], ds[root]+counts[root]), nil
}

// gatherValues collects every member's value on root; parts[q] is nil for
// root itself. Non-roots get nil. Values that do not match root's abort the
// collective on every member.
func (c *Comm) gatherValues(ctx context.Context, op string, root int, v value, tag func(uint8) uint64) ([]*got, error) {
	if c.rank != root {
		return nil, c.send(ctx, op, root, tag(0), v, nil)
	}
	parts := make([]*got, len(c.ranks))
	if err := c.recvMatching(ctx, op, v, tag, parts); err != nil {
		return nil, err
	}
	return parts, nil
}

// recvMatching receives every peer's value into parts[peer]. A value that
// does not match v aborts the collective on every member; on any error all
// of parts is released.
func (c *Comm) recvMatching(ctx context.Context, op string, v value, tag func(uint8) uint64, parts []*got) error {
	err := c.recvAll(ctx, op, tag, func(q int, g *got) error {
		parts[q] = g
		if err := matches(v, g); err != nil {
			releaseGots(parts)
			return c.failColl(tag(0), &PeerError{Op: op, Rank: c.rank, Peer: q, Err: err})
		}
		return nil
	})
	if err != nil {
		releaseGots(parts)
	}
	return err
}

// gatherAs starts a rooted gather of x, viewed as a value by view, and
// collects the values on root as gatherValues does.
func gatherAs[T any](ctx context.Context, c *Comm, op string, root int, x T, view func(T) (value, error)) ([]*got, error) {
	tag, err := c.nextRooted(op, root)
	if err != nil {
		return nil, err
	}
	v, err := view(x)
	if err != nil {
		return nil, c.failColl(tag(0), err)
	}
	return c.gatherValues(ctx, op, root, v, tag)
}

// allgatherValues gives every member everyone's value (parts[own rank] is
// nil): descriptors to each peer on one node, else a ring.
func (c *Comm) allgatherValues(ctx context.Context, op string, v value, tag func(uint8) uint64) ([]*got, error) {
	p, r := len(c.ranks), c.rank
	parts := make([]*got, p)
	if c.allShm() {
		staged, done := c.stage(v)
		defer done()
		if err := c.sendAll(ctx, op, staged, tag); err != nil {
			return nil, err
		}
		if err := c.recvMatching(ctx, op, v, tag, parts); err != nil {
			return nil, err
		}
		return parts, nil
	}
	for s := 0; s < p-1; s++ {
		si, ri := (r-s+p)%p, (r-s-1+p)%p
		out := v
		if si != r {
			var err error
			if out, err = gotValue(parts[si]); err != nil {
				releaseGots(parts)
				return nil, err
			}
		}
		if err := c.send(ctx, op, (r+1)%p, tag(0), out, nil); err != nil {
			releaseGots(parts)
			return nil, err
		}
		g, err := c.recv(ctx, op, (r-1+p)%p, tag(0))
		if err != nil {
			releaseGots(parts)
			return nil, err
		}
		parts[ri] = g
		if err := matches(v, g); err != nil {
			releaseGots(parts)
			return nil, c.failColl(tag(0), &PeerError{Op: op, Rank: r, Peer: (r - 1 + p) % p, Err: err})
		}
	}
	return parts, nil
}

func releaseGots(gs []*got) {
	for _, g := range gs {
		if g != nil {
			g.release()
		}
	}
}

// table builds the result of a record gather: one record per rank (own is
// this rank's), as a table whose columns are chunked over the received
// buffers, or one chunk per column with Contiguous().
func (c *Comm) table(own arrow.RecordBatch, parts []*got, opts []GatherOption) (arrow.Table, error) {
	recs := make([]arrow.RecordBatch, len(parts))
	for q, g := range parts {
		if g == nil {
			own.Retain()
			recs[q] = own
			continue
		}
		parts[q] = nil
		recs[q] = toRecord(g)
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	schema := own.Schema()
	if !applyGather(opts).contiguous {
		return array.NewTableFromRecords(schema, recs), nil
	}
	rows := int64(0)
	for _, r := range recs {
		rows += r.NumRows()
	}
	cols := make([]arrow.Column, len(schema.Fields()))
	arrs := make([]arrow.Array, len(recs))
	for i, f := range schema.Fields() {
		for j, r := range recs {
			arrs[j] = r.Column(i)
		}
		one, err := c.concat(f.Type, arrs)
		if err != nil {
			for _, cc := range cols[:i] {
				cc.Release()
			}
			return nil, err
		}
		ch := arrow.NewChunked(f.Type, []arrow.Array{one})
		one.Release()
		cols[i] = *arrow.NewColumn(f, ch)
		ch.Release()
	}
	t := array.NewTable(schema, cols, rows)
	for i := range cols {
		cols[i].Release()
	}
	return t, nil
}

// GatherRecord collects every rank's record on root, in rank order, as an
// arrow.Table whose columns are chunked over the received buffers (one
// chunk per rank, no copy), or contiguous with Contiguous(). Field names and
// types must agree with root's. Non-roots get nil.
func (c *Comm) GatherRecord(ctx context.Context, root int, rec arrow.RecordBatch, opts ...GatherOption) (arrow.Table, error) {
	const op = "gatherrecord"
	parts, err := gatherAs(ctx, c, op, root, rec, recordValue)
	if err != nil || c.rank != root {
		return nil, err
	}
	return c.table(rec, parts, opts)
}

// AllgatherRecord gives every rank the records of all ranks in rank order,
// as GatherRecord does on root.
func (c *Comm) AllgatherRecord(ctx context.Context, rec arrow.RecordBatch, opts ...GatherOption) (arrow.Table, error) {
	const op = "allgatherrecord"
	tag, err := c.next()
	if err != nil {
		return nil, err
	}
	v, err := recordValue(rec)
	if err != nil {
		return nil, c.failColl(tag(0), err)
	}
	parts, err := c.allgatherValues(ctx, op, v, tag)
	if err != nil {
		return nil, err
	}
	return c.table(rec, parts, opts)
}

// GatherChunked collects every rank's chunked array on root: one chunked
// array with the chunks of rank 0, then rank 1, ..., aliasing the received
// buffers, or one chunk with Contiguous(). Non-roots get nil.
func (c *Comm) GatherChunked(ctx context.Context, root int, ch *arrow.Chunked, opts ...GatherOption) (*arrow.Chunked, error) {
	const op = "gatherchunked"
	parts, err := gatherAs(ctx, c, op, root, ch, chunkedValue)
	if err != nil || c.rank != root {
		return nil, err
	}
	var all []arrow.Array
	for q, g := range parts {
		if g == nil {
			for _, a := range ch.Chunks() {
				a.Retain()
				all = append(all, a)
			}
			continue
		}
		all = append(all, toChunks(g)...)
		parts[q] = nil
	}
	defer releaseAll(all)
	return c.chunked(ch.DataType(), all, opts)
}
