// Reads a rankhub result file with readers that are not rankhub's own and
// prints one JSON object on stdout, for results' Go tests to compare:
//
//   node check.mjs FILE.arrow [BY,COLUMNS]
//
// arrow:  what Arrow JS sees: rows, columns (name, type, nullable), the
//         rankhub.* schema metadata and the record batch lengths.
// duckdb: DuckDB's view. DuckDB reads Arrow IPC files only through its
//         "arrow" community extension, which cannot be downloaded offline,
//         so the columns Arrow JS decoded are appended into a DuckDB table
//         (typed from the Arrow schema) and DuckDB runs, per group of BY,
//         count(*), count(output) and avg(output) for every float64 column
//         after "error", the rankhub outputs.
import { readFileSync } from 'node:fs';
import { tableFromIPC, Type } from 'apache-arrow';
import { DuckDBInstance, DuckDBTimestampTZValue } from '@duckdb/node-api';

const [file, byArg = ''] = process.argv.slice(2);
if (!file) {
  console.error('usage: node check.mjs FILE.arrow [BY,COLUMNS]');
  process.exit(2);
}
const by = byArg ? byArg.split(',') : [];

const table = tableFromIPC(readFileSync(file));
const fields = table.schema.fields;
const metadata = {};
for (const [k, v] of table.schema.metadata) {
  if (k.startsWith('rankhub.')) metadata[k] = v;
}
const arrow = {
  rows: table.numRows,
  columns: fields.map((f) => ({ name: f.name, type: String(f.type), nullable: f.nullable })),
  metadata,
  batches: table.batches.map((b) => b.numRows),
};

// Arrow type -> DuckDB column type and appender call.
function duckType(f) {
  switch (f.typeId) {
    case Type.Int:
      if (f.type.bitWidth === 64) return f.type.isSigned ? ['BIGINT', (a, v) => a.appendBigInt(BigInt(v))] : ['UBIGINT', (a, v) => a.appendUBigInt(BigInt(v))];
      if (f.type.bitWidth === 32) return f.type.isSigned ? ['INTEGER', (a, v) => a.appendInteger(v)] : ['UINTEGER', (a, v) => a.appendUInteger(v)];
      break;
    case Type.Float:
      return ['DOUBLE', (a, v) => a.appendDouble(v)];
    case Type.Utf8:
      return ['VARCHAR', (a, v) => a.appendVarchar(v)];
    case Type.Bool:
      return ['BOOLEAN', (a, v) => a.appendBoolean(v)];
    case Type.Timestamp:
      // Arrow JS gives milliseconds as a number; the column holds microseconds.
      return ['TIMESTAMPTZ', (a, v, raw) => a.appendTimestampTZ(new DuckDBTimestampTZValue(raw))];
  }
  throw new Error(`column ${f.name}: no DuckDB mapping for Arrow type ${f.type}`);
}

const q = (name) => '"' + name.replaceAll('"', '""') + '"';
const errIdx = fields.findIndex((f) => f.name === 'error');
const outputs = fields.filter((f, i) => i > errIdx && f.typeId === Type.Float).map((f) => f.name);

const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();
const types = fields.map(duckType);
await conn.run(`CREATE TABLE results (${fields.map((f, i) => `${q(f.name)} ${types[i][0]}`).join(', ')})`);
const app = await conn.createAppender('results');
for (const batch of table.batches) {
  const cols = fields.map((f) => batch.getChild(f.name));
  for (let r = 0; r < batch.numRows; r++) {
    for (let c = 0; c < fields.length; c++) {
      const col = cols[c];
      if (!col.isValid(r)) {
        app.appendNull();
        continue;
      }
      // Timestamps: the raw int64 microseconds, straight from the buffer.
      const raw = fields[c].typeId === Type.Timestamp ? timestampMicros(col, r) : undefined;
      types[c][1](app, col.get(r), raw);
    }
    app.endRow();
  }
}
app.flushSync();
app.closeSync();

// timestampMicros returns row r of a timestamp[us] vector as a bigint.
function timestampMicros(vec, r) {
  let base = 0;
  for (const d of vec.data) {
    if (r < base + d.length) {
      const i = d.offset + (r - base);
      const words = new Int32Array(d.values.buffer, d.values.byteOffset, d.values.byteLength / 4);
      return (BigInt(words[2 * i + 1]) << 32n) | BigInt(words[2 * i] >>> 0);
    }
    base += d.length;
  }
  throw new Error(`row ${r} out of range`);
}

const sel = [...by.map(q), 'count(*) AS rows'];
for (const o of outputs) sel.push(`count(${q(o)}) AS ${q(o + '_n')}`, `avg(${q(o)}) AS ${q(o + '_mean')}`);
const groupBy = by.length ? ` GROUP BY ${by.map(q).join(', ')} ORDER BY ${by.map(q).join(', ')}` : '';
const reader = await conn.runAndReadAll(`SELECT ${sel.join(', ')} FROM results${groupBy}`);
const groups = reader.getRowObjectsJson();
const total = (await conn.runAndReadAll('SELECT count(*) AS n, min(started) AS first FROM results')).getRowObjectsJson()[0];
conn.closeSync();

console.log(JSON.stringify({ arrow, duckdb: { rows: Number(total.n), first_started: total.first, outputs, groups } }));
