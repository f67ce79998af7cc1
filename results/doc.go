// Package results writes and reads rankhub sweep result files: Arrow IPC
// files (the "file" format, readable by pyarrow, Arrow JS, DuckDB, polars)
// with one row per finished task and the job's full provenance.
//
// # Columns
//
// In this order (Schema):
//
//	task         int64             position of the task in its segment's grid
//	                               (point·replicates + replicate); not an identity
//	<param>...   by parameter kind one column per sweep parameter, in job order:
//	                               int64, float64, utf8 or bool
//	replicate    int64
//	seed         uint64            the task's seed
//	rank         int32             rank that ran it
//	host         utf8              host of that rank
//	started      timestamp[us,UTC]
//	finished     timestamp[us,UTC]
//	attempt      int32             1 for the first try
//	exit_status  int32             0 for success
//	error        utf8, nullable    stderr tail or error message of a failed task
//	segment      int32             the run (segment) that wrote the row; since
//	                               results_version 2
//	stdout       utf8, nullable    what the task printed, bounded (TextLimit,
//	stderr       utf8, nullable    default 32 KiB each: head and tail kept
//	                               around a "[rankhub: N bytes cut]" line);
//	                               absent in files of older rankhubs
//	<output>...  float64, nullable one column per job output, in job order;
//	                               null when the task failed or the output is missing;
//	                               list<float64> for a table job (parse = "table":
//	                               Row.Lists), which Peek averages element-wise
//	                               as outputs "name[0]", "name[1]", ...
//
// A row is failed when exit_status != 0 or error is not null. In a Row,
// Outputs uses NaN for a missing output (written as null, read back as NaN);
// an output that really is NaN is therefore stored as missing.
//
// # Provenance
//
// The schema metadata holds the Provenance under keys prefixed "rankhub.":
// job (the job file's full text), job_file, version, revision, go_version,
// program, program_sha256, hosts (JSON array), job_id, scheduler, started
// (RFC 3339), seed, tasks, order (how task indices follow from parameters
// and replicates), results_version, resumes (JSON, the runs that
// continued the file with Append), segments (JSON, every run of the file
// with its own job text, program and seed; see Segment), and when known
// inputs (JSON object: input file → SHA-256, see HashInputs), script and
// script_sha256 (the script a command runs through an interpreter). The
// revision is the one the Makefile stamps into internal/buildinfo, the same
// as `rankhub version` prints, whatever GOFLAGS says. Append refuses
// (ErrMismatch, unless Force) a file whose job text, program, script or
// inputs differ, naming what differs.
//
// # Opening and closing batches
//
// The end of a run is not known when the schema is written, and the footer
// repeats the initial schema, so the end is carried by record batches with
// no rows and message-level custom metadata:
//
//   - an opening batch (key rankhub.opened) is written with the schema by
//     Create and Append, so the file is readable from its first instant;
//   - a closing batch (keys rankhub.status, rankhub.ended, rankhub.rows) is
//     written by Close(status), and by Recover with status "interrupted".
//
// Other readers see them as empty batches. Reader.Status reports the closing
// batch; a file still being written or killed has none. Reader.Records holds
// data batches only.
//
// # Checksums, durability and torn files
//
// Rows are buffered and written as one record batch, then fsynced, whenever
// FlushRows rows are buffered or FlushInterval has passed since the last
// flush (a timer goroutine flushes a slow sweep). The job's [results] table
// gives the defaults (1024 rows, 2 s).
//
// Every flush appends its batch, a small guard and a new Arrow footer
// listing every batch so far (ipcfile.go has the layout), so after each
// flush the file is a complete Arrow IPC file: pyarrow, Arrow JS, DuckDB
// (through Parquet export) and arrow-go read a running or killed writer's
// file as it is. Bytes once written are not rewritten; the footers of
// earlier flushes stay between batches until the Writer compacts the file
// (a copy renamed over it) when they take more room than the rows.
//
// Every record batch carries the CRC32C of its content and metadata (batch
// metadata key rankhub.crc32c); the guard holds the CRC32C of the footer
// and of the schema message. Open checks all of them: a batch that fails is
// left out and reported by Reader.Corrupt with its index and byte range; a
// torn or damaged end (a writer killed in the middle of a flush, zeroed or
// garbage bytes) is skipped back to the last complete flush and reported by
// Reader.TailError. Reader.Problems has both as lines for commands. peek,
// Recover and Append therefore never count a damaged row: Append's done set
// holds verified rows only, so a resume reruns the others. Files of
// results_version 1 (no checksums) are still read, unverified.
//
// A writer holds an exclusive flock on its file; Recover and Append refuse a
// file held by a live writer (ErrLocked). Both write a temporary file in the
// same directory, fsync it and rename it over the original, so a crash at any
// point loses no row that was in the file. A crash can leave a temporary file
// named .<name>.recover-*, .<name>.append-* or .<name>.compact-* behind; it
// may be deleted.
//
// # Memory
//
// Batches are built with the Allocator option (default: Go's allocator). A
// Reader owns its record batches and releases them in Close; callers Retain
// a batch they keep longer.
//
// # Usage
//
// Writing, from the sweep driver:
//
//	prov, err := results.NewProvenance(job)
//	prov.JobID, prov.Hosts, prov.Order = id, hosts, order
//	w, err := results.Create(path, job, prov)
//	// for each finished task, from any goroutine:
//	err = w.Write(results.Row{Task: t.Index, Values: t.Values, Replicate: t.Replicate,
//		Seed: t.Seed, Rank: rank, Host: host, Started: s, Finished: f,
//		Attempt: 1, Outputs: []float64{energy, magnetization}})
//	err = w.Close("completed")
//
// Resuming after a kill, running only what is missing:
//
//	w, done, err := results.Append(path, job, prov)
//	for _, t := range tasks {
//		if !done[t.Index] {
//			// run t, w.Write(row)
//		}
//	}
//
// Watching a running sweep (rankhub peek):
//
//	r, err := results.Open(path)
//	defer r.Close()
//	s, err := results.Peek(r, []string{"L", "T"})
//	s.WriteTable(os.Stdout) // also WriteCSV, WriteJSON
//	// plotting: package results/plot (imported by the CLI only)
package results
