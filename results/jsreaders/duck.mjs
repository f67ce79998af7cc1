// Reads a Parquet file exported by `rankhub results export --format parquet`
// with DuckDB's own read_parquet (no extension) and prints one JSON object:
// the row count and, per group of BY, count(*), count(output) and
// avg(output) for every output named in OUTPUTS.
//
//   node duck.mjs FILE.parquet BY,COLUMNS OUTPUT,NAMES
import { DuckDBInstance } from '@duckdb/node-api';

const [file, byArg = '', outArg = ''] = process.argv.slice(2);
if (!file) {
  console.error('usage: node duck.mjs FILE.parquet [BY,COLUMNS] [OUTPUTS]');
  process.exit(2);
}
const q = (name) => '"' + name.replaceAll('"', '""') + '"';
const by = byArg ? byArg.split(',') : [];
const outputs = outArg ? outArg.split(',') : [];
const src = `read_parquet('${file.replaceAll("'", "''")}')`;

const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();
const sel = [...by.map(q), 'count(*) AS rows'];
for (const o of outputs) sel.push(`count(${q(o)}) AS ${q(o + '_n')}`, `avg(${q(o)}) AS ${q(o + '_mean')}`);
const groupBy = by.length ? ` GROUP BY ${by.map(q).join(', ')} ORDER BY ${by.map(q).join(', ')}` : '';
const groups = (await conn.runAndReadAll(`SELECT ${sel.join(', ')} FROM ${src}${groupBy}`)).getRowObjectsJson();
const total = (await conn.runAndReadAll(`SELECT count(*) AS n FROM ${src}`)).getRowObjectsJson()[0];
conn.closeSync();
console.log(JSON.stringify({ rows: Number(total.n), groups }));
