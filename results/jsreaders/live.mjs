// Reads a result file with Arrow JS again and again while its writer runs,
// and prints one JSON object: the row count of every read, or its error.
//
//   node live.mjs FILE.arrow READS INTERVAL_MS
import { readFileSync } from 'node:fs';
import { tableFromIPC } from 'apache-arrow';

const [file, reads = '50', interval = '20'] = process.argv.slice(2);
if (!file) {
  console.error('usage: node live.mjs FILE.arrow READS INTERVAL_MS');
  process.exit(2);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const out = [];
for (let i = 0; i < Number(reads); i++) {
  try {
    out.push({ rows: tableFromIPC(readFileSync(file)).numRows });
  } catch (e) {
    out.push({ error: String(e && e.message ? e.message : e) });
  }
  await sleep(Number(interval));
}
console.log(JSON.stringify(out));
