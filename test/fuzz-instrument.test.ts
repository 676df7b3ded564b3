/**
 * The edge counters the TypeScript fuzz engine puts into the built loader
 * (test/fuzz/instrument.mjs): the instrumented code computes what the original computes, and
 * each branch taken bumps its own counter, so the engine sees which ways an input went.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT } from './helpers.js';

interface Instrumented {
  text: string;
  count: number;
}
const { instrumentText } = (await import(
  pathToFileURL(path.join(ROOT, 'test', 'fuzz', 'instrument.mjs')).href
)) as { instrumentText: (text: string, name: string, first: number) => Instrumented };

const SOURCE = `
function classify(x, list) {
  let out = [];
  if (x < 0) out.push('neg');
  else if (x === 0) out.push('zero');
  if (x > 100) out.push('big');
  switch (x % 3) {
    case 0:
    case 1: out.push('low'); break;
    default: out.push('high');
  }
  for (const v of list) if (v) out.push(v);
  let i = 0;
  while (i < x && i < 3) i++;
  do i--; while (i > 0);
  try { if (x === 7) throw new Error('seven'); } catch { out.push('caught'); }
  const f = (y) => ({ y: y ?? 'none' });
  out.push(x > 5 ? 'gt5' : 'le5', f(list[0]).y, (x && 'truthy') || 'falsy');
  return out.join(',');
}
return classify;
`;

/** The function SOURCE defines, original or instrumented with counters in `cov`. */
function build(text: string, cov?: Uint32Array): (x: number, list: unknown[]) => string {
  // The instrumented text starts by reading the counters from globalThis.
  (globalThis as Record<string, unknown>).__dvrlabCov = cov;
  return new Function(text.replace(/^const __dvrlabCov/, 'let __dvrlabCov'))() as never;
}

describe('fuzz coverage instrumentation', () => {
  const out = instrumentText(SOURCE, 'sample.js', 10);
  const cov = new Uint32Array(10 + out.count);
  const original = build(SOURCE);
  const instrumented = build(out.text, cov);

  it('leaves what the code computes as it was', () => {
    for (const [x, list] of [
      [-4, []],
      [0, ['a', null]],
      [7, [null]],
      [101, ['z', 'y']],
      [2, [undefined]],
    ] as [number, unknown[]][]) {
      assert.equal(instrumented(x, list), original(x, list), `x = ${x}`);
    }
  });

  it('numbers its counters from where it is told, one per branch', () => {
    // Function entries (2), if arms (2 + 2 + 2 + 2 + 2), case clauses (3), loop bodies (3),
    // catch (1), ?: arms (2), ?? / && / || right sides (4, one in the while condition).
    assert.equal(out.count, 25);
    cov.fill(0);
    instrumented(3, []);
    assert.deepEqual([...cov.subarray(0, 10)], new Array<number>(10).fill(0));
  });

  it('gives inputs that take different ways different counters', () => {
    const seen = (x: number, list: unknown[]) => {
      cov.fill(0);
      instrumented(x, list);
      return [...cov].map((n, i) => (n > 0 ? i : -1)).filter((i) => i >= 0);
    };
    const negative = seen(-1, []);
    const caught = seen(7, ['a']);
    assert.notDeepEqual(negative, caught);
    // The catch block runs only for 7, the `else if` arm only for non-negative numbers.
    const onlyCaught = caught.filter((i) => !negative.includes(i));
    assert.ok(onlyCaught.length >= 3, `edges only 7 takes: ${onlyCaught.join(' ')}`);
    // The same input twice takes the same edges, the loop the same number of times.
    cov.fill(0);
    instrumented(2, []);
    const once = [...cov];
    cov.fill(0);
    instrumented(2, []);
    assert.deepEqual([...cov], once);
  });
});
