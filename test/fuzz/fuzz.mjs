#!/usr/bin/env node
// A coverage-guided fuzzer for the TypeScript loader, in the manner of libFuzzer (whose
// flags and output it copies), built on Node alone: @jazzer.js/core, the libFuzzer engine for
// Node, does not run here (its 4.0.0 addon needs glibc 2.38; 2.1.0 downloads its addon from
// GitHub at install time).
//
//   node test/fuzz/fuzz.mjs TARGET [CORPUS_DIR] [-runs=N] [-max_total_time=S] [-max_len=N]
//                           [-timeout=S] [-rss_limit_mb=N] [-seed=N]
//   node test/fuzz/fuzz.mjs TARGET FILE...        run each file once (a crash or a seed)
//
// Coverage is edge coverage of dist/src/ (the code under test, not yaml or zod): the worker
// runs a copy with a counter on every branch (instrument.mjs). A feature is an edge taken,
// with its count in one of libFuzzer's eight buckets; an input that shows a new feature joins
// the corpus (CORPUS_DIR, default test/fuzz/corpus/TARGET). `cov` is the number of edges of
// dist/src seen taken, `ft` the number of features.
//
// The target runs in a worker whose stack is about the size of the CLI's main-thread stack.
// A crash (an exception the target lets through), a run longer than -timeout seconds (default
// 10) or a worker out of memory (-rss_limit_mb, default 2048, applies to its heap) stops the
// fuzzer with exit code 1 and the input in test/fuzz/artifacts/TARGET/. The slowest input of
// a run is kept there as `slowest` (not a failure). The worker's working directory is a fresh
// temporary sandbox holding `flows.txt`; it may read no file outside it (a flows file name
// outside it reads as a missing file), so an input cannot make it read /dev/zero or a FIFO.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { counters, instrument } from './instrument.mjs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
// A few names the seeds may lack, so that references can miss.
// The loader makes short-lived garbage at a great rate; a young generation this size halves
// the time the worker spends collecting it.
const YOUNG_MB = 128;
const STRINGS_FROM_CORPUS = ['node9', 'net9', 'sn9', 'router9', 'vm9'];

if (isMainThread) await main();
else await worker();

function usage(message) {
  console.error(`fuzz.mjs: ${message}`);
  console.error('usage: node test/fuzz/fuzz.mjs TARGET [CORPUS_DIR | FILE...] [-runs=N] ...');
  process.exit(2);
}

async function main() {
  const opts = { runs: -1, max_total_time: 0, max_len: 65536, timeout: 10, rss_limit_mb: 2048 };
  opts.seed = Date.now() % 0x100000000;
  const positional = [];
  for (const a of process.argv.slice(2)) {
    const m = /^-(\w+)=(-?\d+)$/.exec(a);
    if (m && m[1] in { ...opts, print_final_stats: 1 }) opts[m[1]] = Number(m[2]);
    else if (a.startsWith('-')) usage(`unknown flag ${a}`);
    else positional.push(a);
  }
  const target = positional.shift();
  if (target === undefined) usage('no target');
  const { targets } = await import('./targets.mjs');
  if (!(target in targets)) usage(`no target ${target} (${Object.keys(targets).join(', ')})`);
  const inputs = positional.map((p) => path.resolve(p));
  const replay = inputs.length > 0 && inputs.every((p) => fs.statSync(p).isFile());
  const corpus = replay ? undefined : (inputs[0] ?? path.join(here, 'corpus', target));
  const artifacts = path.join(here, 'artifacts', target);
  fs.mkdirSync(artifacts, { recursive: true });
  if (corpus) fs.mkdirSync(corpus, { recursive: true });

  const sandbox = fs.mkdtempSync(path.join(os.tmpdir(), 'dvrlab-fuzz-'));
  fs.writeFileSync(
    path.join(sandbox, 'flows.txt'),
    '# flows read by name from the fuzz sandbox\npriority=1,actions=NORMAL\n' +
      'table=0,in_port=1,dl_vlan=5,actions=strip_vlan,output:2 # a comment\n',
  );
  process.chdir(sandbox);
  const cleanup = () => fs.rmSync(sandbox, { recursive: true, force: true });
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      cleanup();
      process.exit(130);
    });
  }

  // The worker publishes the input it is running and when it started, for the watchdog.
  const shared = {
    input: new SharedArrayBuffer(opts.max_len),
    meta: new SharedArrayBuffer(16), // [0]: input length (Int32); [1]: start time in ms (Float64)
  };
  const len = new Int32Array(shared.meta, 0, 1);
  const started = new Float64Array(shared.meta, 8, 1);
  const current = () => Buffer.from(new Uint8Array(shared.input, 0, len[0]));

  let finished = false;
  const fail = (kind, detail, data) => {
    if (finished) return;
    finished = true;
    const sum = createHash('sha1').update(data).digest('hex');
    const file = path.join(artifacts, `${kind}-${sum}`);
    fs.writeFileSync(file, data);
    console.log(`==ERROR: fuzz.mjs: ${detail}`);
    console.log(`Test unit written to ${file}`);
    console.log(`Base64: ${data.length <= 256 ? data.toString('base64') : '(longer than 256)'}`);
    cleanup();
    process.exit(1);
  };

  const { edges, dir } = instrument(root);
  const w = new Worker(fileURLToPath(import.meta.url), {
    workerData: {
      target,
      corpus,
      inputs: replay ? inputs : [],
      artifacts,
      opts,
      shared,
      edges,
      src: dir,
    },
    resourceLimits: {
      maxOldGenerationSizeMb: opts.rss_limit_mb,
      maxYoungGenerationSizeMb: YOUNG_MB,
      stackSizeMb: 1,
    },
    stdout: false,
  });
  const watchdog = setInterval(() => {
    const t = started[0];
    if (t > 0 && Date.now() - t > opts.timeout * 1000) {
      const data = current();
      w.terminate();
      fail('timeout', `timeout: one input ran for more than ${opts.timeout} s`, data);
    }
  }, 100);
  w.on('message', (m) => {
    if (m.type === 'log') console.log(m.line);
    else if (m.type === 'crash') fail('crash', m.detail, Buffer.from(m.data));
    else if (m.type === 'done') {
      finished = true;
      clearInterval(watchdog);
      cleanup();
      process.exit(0);
    }
  });
  w.on('error', (e) => {
    if (e.code === 'ERR_WORKER_OUT_OF_MEMORY' && started[0] > 0) {
      fail('oom', `out of memory: ${e.message}`, current());
    } else if (started[0] > 0) {
      fail('crash', `crash: ${e.stack}`, current());
    } else {
      // Not while an input ran (out of memory too): a bug of the engine.
      console.error(`fuzz.mjs: internal error: ${e.stack}`);
      cleanup();
      process.exit(2);
    }
  });
  w.on('exit', (code) => {
    if (!finished) fail('crash', `the worker exited with code ${code}`, current());
  });
}

async function worker() {
  const { target, corpus, inputs, artifacts, opts, shared, edges, src } = workerData;
  const log = (line) => parentPort.postMessage({ type: 'log', line });
  const { mutate, parseEntry, Rng, scalars } = await import('./mutate.mjs');
  const cov = counters(edges);
  globalThis.__dvrlabFuzzSrc = src;
  const { targets } = await import('./targets.mjs');
  const run = targets[target];
  // After the imports: module loading reads files outside the sandbox.
  const readFile = confine(fs.realpathSync(process.cwd()));
  // A warning the code under test emits would reach the user's terminal as lines of its own.
  let warning;
  process.emitWarning = (w) => {
    warning ??= w instanceof Error ? w.message : String(w);
  };

  const input = new Uint8Array(shared.input);
  const len = new Int32Array(shared.meta, 0, 1);
  const started = new Float64Array(shared.meta, 8, 1);
  const seen = new Uint8Array(edges); // edges seen taken
  const buckets = new Uint8Array(edges); // per edge, a bit for every hit-count bucket seen
  let edgesCovered = 0;
  let featureCount = 0;
  let slowest = 0;
  let slowestInput;

  // libFuzzer's hit-count buckets: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+.
  const bucket = (n) => (n < 4 ? n : n < 8 ? 4 : n < 16 ? 5 : n < 32 ? 6 : n < 128 ? 7 : 8);
  // Stack traces cost a good share of an execution (the loader and its parsers throw on most
  // inputs); an input that crashes runs again with them for the report.
  const stackTraceLimit = Error.stackTraceLimit;
  const runOnce = (data) => {
    try {
      run(data);
      return undefined;
    } catch (e) {
      return e ?? new Error(`thrown: ${String(e)}`);
    }
  };

  /** Runs one input; gives the number of new features, or reports a crash and stops. */
  const execute = (data) => {
    input.set(data.subarray(0, input.length));
    len[0] = Math.min(data.length, input.length);
    const t0 = Date.now();
    started[0] = t0;
    warning = undefined;
    cov.fill(0);
    Error.stackTraceLimit = 0;
    let error = runOnce(data);
    Error.stackTraceLimit = stackTraceLimit;
    if (error !== undefined) error = runOnce(data) ?? error;
    if (error === undefined && warning !== undefined) {
      error = new Error(`the code under test emitted a process warning: ${warning}`);
    }
    started[0] = 0;
    const ms = Date.now() - t0;
    if (ms > slowest) {
      slowest = ms;
      slowestInput = data;
    }
    if (error !== undefined) {
      const detail =
        error instanceof Error ? `${error.stack}${causeOf(error)}` : `thrown: ${String(error)}`;
      parentPort.postMessage({ type: 'crash', detail: `crash: ${detail}`, data });
      return undefined;
    }
    let fresh = 0;
    for (let i = 0; i < edges; i++) {
      const n = cov[i];
      if (n === 0) continue;
      const bit = 1 << (bucket(n) - 1);
      if ((buckets[i] & bit) !== 0) continue;
      buckets[i] |= bit;
      featureCount++;
      fresh++;
      if (seen[i] === 0) {
        seen[i] = 1;
        edgesCovered++;
      }
    }
    return fresh;
  };

  if (inputs.length > 0) {
    for (const f of inputs) {
      const data = readFile(f);
      const t0 = Date.now();
      if (execute(data) === undefined) return;
      log(`Executed ${f} in ${Date.now() - t0} ms`);
    }
    parentPort.postMessage({ type: 'done' });
    return;
  }

  const rng = new Rng(opts.seed);
  log(`INFO: Seed: ${opts.seed}`);
  const entries = [];
  const pool = { strings: [...STRINGS_FROM_CORPUS], numbers: [0, 1] };
  const addEntry = (data) => {
    const text = data.toString('utf8');
    const parsed = parseEntry(text);
    if (parsed && entries.length < 5000) {
      const s = scalars(parsed.tree);
      for (const x of s.strings) if (pool.strings.length < 20000) pool.strings.push(x);
      for (const x of s.numbers) if (pool.numbers.length < 5000) pool.numbers.push(x);
    }
    entries.push({ text, parsed, size: data.length });
  };

  const files = fs
    .readdirSync(corpus)
    .map((f) => path.join(corpus, f))
    .filter((f) => fs.statSync(f).isFile())
    .map((f) => ({ f, size: fs.statSync(f).size }))
    .filter((x) => x.size <= opts.max_len)
    .sort((a, b) => a.size - b.size || (a.f < b.f ? -1 : 1));
  const start = Date.now();
  let runs = 0;
  let added = 0;
  const status = (what, size) => {
    const secs = Math.max(1, Math.round((Date.now() - start) / 1000));
    const corp = entries.reduce((n, e) => n + e.size, 0);
    const line =
      `#${runs}\t${what} cov: ${edgesCovered} ft: ${featureCount} ` +
      `corp: ${entries.length}/${human(corp)} exec/s: ${Math.round(runs / secs)} rss: ${Math.round(process.memoryUsage().rss / 2 ** 20)}Mb` +
      (size === undefined ? '' : ` L: ${size}/${opts.max_len}`);
    log(line);
  };
  for (const { f } of files) {
    const data = readFile(f);
    runs++;
    const fresh = execute(data);
    if (fresh === undefined) return;
    if (fresh > 0) addEntry(data);
  }
  if (entries.length === 0) addEntry(Buffer.from('{}'));
  status('INITED');

  const stopAt = opts.max_total_time > 0 ? start + opts.max_total_time * 1000 : Infinity;
  let nextPulse = 1;
  while ((opts.runs < 0 || runs < opts.runs) && Date.now() < stopAt) {
    const parent = pickEntry(rng, entries);
    const other = pickEntry(rng, entries);
    const data = Buffer.from(mutate(rng, parent, other, pool, opts.max_len), 'utf8');
    if (data.length > opts.max_len) continue;
    runs++;
    const fresh = execute(data);
    if (fresh === undefined) return;
    if (fresh > 0) {
      added++;
      addEntry(data);
      fs.writeFileSync(path.join(corpus, createHash('sha1').update(data).digest('hex')), data);
      status('NEW   ', data.length);
    } else if (runs >= nextPulse) {
      status('pulse ');
    }
    while (nextPulse <= runs) nextPulse *= 2;
  }
  const secs = (Date.now() - start) / 1000;
  status('DONE  ');
  if (slowestInput) fs.writeFileSync(path.join(artifacts, 'slowest'), slowestInput);
  log(`Done ${runs} runs in ${Math.round(secs)} second(s)`);
  log(`stat::number_of_executed_units: ${runs}`);
  log(`stat::average_exec_per_sec:     ${Math.round(runs / Math.max(secs, 0.001))}`);
  log(`stat::new_units_added:          ${added}`);
  log(`stat::slowest_unit_time_sec:    ${(slowest / 1000).toFixed(3)}`);
  log(`stat::peak_rss_mb:              ${Math.round(process.memoryUsage().rss / 2 ** 20)}`);
  log(`stat::edges_covered:            ${edgesCovered}`);
  log(`stat::features:                 ${featureCount}`);
  parentPort.postMessage({ type: 'done' });
}

/**
 * A corpus entry, the smaller ones more often (the best of two draws, by size, three times in
 * four): a small input runs faster and its mutations hit the code they change more directly.
 */
function pickEntry(rng, entries) {
  const a = rng.pick(entries);
  const b = rng.pick(entries);
  return rng.chance(0.75) === a.size <= b.size ? a : b;
}

function human(n) {
  return n < 1024
    ? `${n}b`
    : n < 1 << 20
      ? `${Math.round(n / 1024)}Kb`
      : `${Math.round(n / (1 << 20))}Mb`;
}

function causeOf(e) {
  return e.cause instanceof Error ? `\nCaused by: ${e.cause.stack}` : '';
}

/**
 * Makes every file read outside `dir` (and of a descriptor) fail as a missing file would, for
 * the code under test; gives the unconfined reader for the engine's own files.
 */
function confine(dir) {
  const original = fs.readFileSync;
  fs.readFileSync = function readFileSync(file, ...rest) {
    const p =
      typeof file === 'string'
        ? path.resolve(file)
        : file instanceof URL
          ? fileURLToPath(file)
          : '';
    if (!p.startsWith(dir + path.sep)) {
      const e = new Error(`ENOENT: no such file or directory, open '${String(file)}'`);
      e.code = 'ENOENT';
      throw e;
    }
    return original.call(this, file, ...rest);
  };
  syncBuiltinESMExports();
  return (file) => original(file);
}
