/**
 * File-system helpers for the commands' output directories.
 */
import { mkdirSync, statSync } from 'node:fs';
import * as path from 'node:path';

/**
 * Creates `dir` and its missing parents, as `mkdir -p`. Unlike `mkdirSync(dir, { recursive:
 * true })`, which Node retries for ever where the kernel answers ENOENT to every mkdir (under
 * /proc, for one), it makes each missing component once and throws the first error; a file
 * in the way is an error too.
 */
export function makeDirs(dir: string): void {
  const missing: string[] = [];
  let d = path.resolve(dir);
  while (!statSync(d, { throwIfNoEntry: false }) && d !== path.dirname(d)) {
    missing.push(d);
    d = path.dirname(d);
  }
  if (missing.length === 0 && !statSync(d).isDirectory()) mkdirSync(d); // throws EEXIST
  for (const m of missing.reverse()) mkdirSync(m);
}
