/**
 * The command line: help, version and every kind of argument error, by running the real
 * executable (none of these need the native addon), and the replay command's plumbing
 * (options handed to the engine, stats.json, summary, stale outputs, exit codes) with an
 * engine of the test's own. When the addon is built, a real replay of the l2-rewrite example
 * runs too.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { run } from '../src/cli/main.js';
import type { NativeReplayOptions, NativeScenario, StatsJson } from '../src/native.js';
import { ROOT, sharedDir, tempDir } from './helpers.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const EXAMPLE = path.join(sharedDir(), 'tools', 'ovs-oracle-examples', 'l2-rewrite');
const ADDON_BUILT = existsSync(path.join(ROOT, 'native', 'index.js'));

function dvrlab(args: string[], cwd = ROOT) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Asserts that the run failed with exit code 1 and exactly this one line on stderr. */
function assertUserError(r: ReturnType<typeof dvrlab>, line: string) {
  assert.equal(r.stderr, `${line}\n`);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
}

const SCENARIO = JSON.stringify({
  bridges: [
    {
      name: 'br0',
      ports: [
        { name: 'p1', ofport: 1 },
        { name: 'p2', ofport: 2 },
      ],
      flows: ['in_port=1,actions=output:2'],
    },
  ],
});

describe('dvrlab executable', () => {
  it('--help lists the commands', () => {
    const r = dvrlab(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: dvrlab \[options\] \[command\]/);
    assert.match(r.stdout, /\n {2}replay \[options\] <scenario> /);
    assert.equal(r.stderr, '');
  });

  it('replay --help lists its options', () => {
    const r = dvrlab(['replay', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: dvrlab replay \[options\] <scenario>/);
    for (const opt of [
      '--in <portref=file>',
      '--out <dir>',
      '--loop <n>',
      '--topspeed',
      '--multiplier <x>',
      '--pps <n>',
      '--limit <n>',
      '--nsec',
      '--json',
      '--no-progress',
      '-q, --quiet',
    ]) {
      assert.ok(r.stdout.includes(opt), opt);
    }
  });

  it('--version prints the package version', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const r = dvrlab(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `${pkg.version}\n`);
  });

  it('without a command, prints help on stderr and fails', () => {
    const r = dvrlab([]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Usage: dvrlab/);
  });

  const errors: [string, string[], string][] = [
    ['unknown command', ['frobnicate'], "dvrlab: unknown command 'frobnicate'"],
    [
      'missing scenario',
      ['replay', '--in', 'p1=x', '--out', 'o'],
      "dvrlab: missing required argument 'scenario'",
    ],
    [
      'missing --out',
      ['replay', 's.json', '--in', 'p1=x'],
      "dvrlab: required option '--out <dir>' not specified",
    ],
    [
      'missing --in',
      ['replay', 's.json', '--out', 'o'],
      "dvrlab: required option '--in <portref=file>' not specified",
    ],
    [
      'unknown option',
      ['replay', 's.json', '--in', 'p1=x', '--out', 'o', '--lop', '2'],
      "dvrlab: unknown option '--lop' (Did you mean --loop?)",
    ],
    [
      'two speeds',
      ['replay', 's.json', '--in', 'p1=x', '--out', 'o', '--topspeed', '--pps', '5'],
      "dvrlab: option '--topspeed' cannot be used with option '--pps <n>'",
    ],
    [
      'multiplier and pps',
      ['replay', 's.json', '--in', 'p1=x', '--out', 'o', '--multiplier', '2', '--pps', '5'],
      "dvrlab: option '--multiplier <x>' cannot be used with option '--pps <n>'",
    ],
    [
      'loop 0',
      ['replay', 's.json', '--in', 'p1=x', '--out', 'o', '--loop', '0'],
      "dvrlab: option '--loop <n>' argument '0' is invalid. expected a whole number >= 1.",
    ],
    [
      'fractional limit',
      ['replay', 's.json', '--in', 'p1=x', '--out', 'o', '--limit', '1.5'],
      "dvrlab: option '--limit <n>' argument '1.5' is invalid. expected a whole number >= 1.",
    ],
    [
      'negative pps',
      ['replay', 's.json', '--in', 'p1=x', '--out', 'o', '--pps', '-3'],
      "dvrlab: option '--pps <n>' argument '-3' is invalid. expected a number > 0.",
    ],
    [
      'bad multiplier',
      ['replay', 's.json', '--in', 'p1=x', '--out', 'o', '--multiplier', 'fast'],
      "dvrlab: option '--multiplier <x>' argument 'fast' is invalid. expected a number > 0.",
    ],
    [
      'missing scenario file',
      ['replay', 'nope.json', '--in', 'p1=x', '--out', 'o'],
      'dvrlab: nope.json: cannot read scenario: no such file',
    ],
  ];
  for (const [what, args, line] of errors) {
    it(`usage error: ${what}`, () => assertUserError(dvrlab(args), line));
  }

  it('reports scenario, port and input mistakes in one line, before touching --out', () => {
    const dir = tempDir({
      's.json': SCENARIO,
      'bad.json': '{"bridges": [\n  {"name": "br0", "ports": [{"name": "p1", "ofport": "x"}]}\n]}',
      'in.pcap': '',
    });
    const out = path.join(dir, 'out');
    const base = ['--out', out];
    assertUserError(
      dvrlab(['replay', 'bad.json', '--in', 'p1=in.pcap', ...base], dir),
      'dvrlab: bad.json:2:54: bridges[0].ports[0].ofport: expected a number from 1 to 65279, ' +
        'got "x"',
    );
    assertUserError(
      dvrlab(['replay', 's.json', '--in', 'p3=in.pcap', ...base], dir),
      'dvrlab: --in p3=in.pcap: unknown port "p3" (did you mean "p1"?); ports are: p1, p2, br0',
    );
    assertUserError(
      dvrlab(['replay', 's.json', '--in', 'p1', ...base], dir),
      'dvrlab: --in p1: expected PORTREF=FILE',
    );
    assertUserError(
      dvrlab(['replay', 's.json', '--in', 'p1=missing.pcap', ...base], dir),
      'dvrlab: --in p1=missing.pcap: cannot read missing.pcap: no such file',
    );
    assertUserError(
      dvrlab(['replay', 's.json', '--in', 'p1=.', ...base], dir),
      'dvrlab: --in p1=.: cannot read .: is a directory',
    );
    assert.equal(existsSync(out), false);
  });

  it('without the addon, says to build it', { skip: ADDON_BUILT && 'the addon is built' }, () => {
    const dir = tempDir({ 's.json': SCENARIO, 'in.pcap': '' });
    const out = path.join(dir, 'out');
    assertUserError(
      dvrlab(['replay', 's.json', '--in', 'p1=in.pcap', '--out', out], dir),
      'dvrlab: cannot load the native engine (it is not built); run npm install',
    );
    assert.equal(existsSync(out), false);
  });

  it('replays the l2-rewrite example', { skip: !ADDON_BUILT && 'the addon is not built' }, () => {
    const out = path.join(tempDir(), 'out');
    const r = dvrlab([
      'replay',
      path.join(EXAMPLE, 'scenario.json'),
      '--in',
      `p1=${path.join(EXAMPLE, 'input.pcap')}`,
      '--out',
      out,
    ]);
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    const stats = JSON.parse(readFileSync(path.join(out, 'stats.json'), 'utf8')) as StatsJson;
    assert.ok(stats.packets_in > 0);
    assert.match(r.stdout, new RegExp(`^Actual: ${stats.packets_in} packets \\(`));
    assert.ok(r.stdout.includes('\tInvariant:                 ok'));
    assert.ok(existsSync(path.join(out, 'p2.pcap')));
  });
});

/** A stream collecting what is written to it. */
class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void) {
    this.text += chunk.toString();
    done();
  }
}

function fakeStats(options: NativeReplayOptions, over: Partial<StatsJson> = {}): StatsJson {
  return {
    packets_in: 3,
    packets_out: 3,
    bytes_in: 180,
    bytes_out: 180,
    dropped: {},
    seconds: 0.000123,
    pps: 24390.24,
    emc_hits: 2,
    emc_bypassed: 0,
    megaflow_hits: 0,
    upcalls: 1,
    megaflows: 1,
    per_port: { 'br0/p1': { rx: 3, tx: 0 }, 'br0/p2': { rx: 0, tx: 3 } },
    inputs: options.inputs.map((i) => ({ ...i, packets: 3, bytes: 180 })),
    flows: 1,
    unique_flow_packets: 3,
    non_flow_packets: 0,
    ...over,
  };
}

describe('replay command with a test engine', () => {
  async function replay(args: string[], over: Partial<StatsJson> = {}) {
    const dir = tempDir({
      's.json': SCENARIO,
      'in.pcap': 'x',
      'in2.pcap': 'y',
      'out/p2.pcap': 'left by an earlier run',
    });
    const stdout = new Capture();
    const stderr = new Capture();
    const seen: { scenario?: NativeScenario; options?: NativeReplayOptions } = {};
    const out = path.join(dir, 'out');
    const stale = path.join(out, 'p2.pcap');
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const code = await run(
        ['replay', 's.json', '--out', out, ...args],
        { stdout, stderr, stderrIsTTY: false },
        {
          makeEngine: (scenario) => {
            seen.scenario = scenario;
            return {
              progress: () => ({ done: 0, total: 0 }),
              replay: async (options) => {
                seen.options = options;
                // The command must have removed what an earlier run left here.
                assert.equal(existsSync(stale), false);
                writeFileSync(stale, 'frames');
                return fakeStats(options, over);
              },
            };
          },
        },
      );
      return { code, stdout: stdout.text, stderr: stderr.text, seen, out };
    } finally {
      process.chdir(cwd);
    }
  }

  it('hands the engine canonical refs, all outputs and the speed; writes stats.json', async () => {
    const r = await replay(
      [
        '--in',
        'p1=in.pcap',
        '--in',
        'br0/p2=in2.pcap',
        '--loop',
        '2',
        '--pps',
        '0.25',
        '--limit',
        '10',
        '--nsec',
      ],
      { packets_in: 6, packets_out: 6, inputs: [] },
    );
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    assert.deepEqual(r.seen.options, {
      inputs: [
        { port: 'br0/p1', path: 'in.pcap' },
        { port: 'br0/p2', path: 'in2.pcap' },
      ],
      outputs: [
        { port: 'br0/p1', path: path.join(r.out, 'p1.pcap') },
        { port: 'br0/p2', path: path.join(r.out, 'p2.pcap') },
        { port: 'br0/br0', path: path.join(r.out, 'br0.pcap') },
      ],
      loop: 2,
      speed: { mode: 'pps', value: 0.25 },
      nsec: true,
      flowsDir: r.out,
      limit: 10,
    });
    assert.equal(r.seen.scenario?.oneNode, true);
    const written = readFileSync(path.join(r.out, 'stats.json'), 'utf8');
    assert.equal(written, `${JSON.stringify(JSON.parse(written), null, 2)}\n`);
    assert.equal(JSON.parse(written).packets_in, 6);
  });

  it('prints the tcpreplay-style summary', async () => {
    const r = await replay(['--in', 'p1=in.pcap']);
    assert.equal(r.code, 0);
    assert.equal(r.seen.options?.speed.mode, 'topspeed');
    assert.equal(r.seen.options?.loop, 1);
    assert.equal(r.seen.options?.nsec, false);
    assert.equal(r.seen.options?.limit, undefined);
    assert.equal(
      r.stdout,
      [
        'Actual: 3 packets (180 bytes) sent in 0.000123 seconds',
        'Rated: 1463414.6 Bps, 11.70 Mbps, 24390.24 pps',
        'Flows: 1 flows, 8130.08 fps, 3 unique flow packets, 0 unique non-flow packets',
        'Statistics for dvrlab replay:',
        '\tSuccessful packets:        3',
        '\tFailed packets:            0',
        '\tFrames out:                3',
        '\tInvariant:                 ok (every input packet emitted or dropped once)',
        '',
      ].join('\n'),
    );
  });

  it('prints JSON with --json and nothing with -q', async () => {
    const json = await replay(['--in', 'p1=in.pcap', '--json', '--multiplier', '2']);
    assert.equal(json.code, 0);
    assert.equal(JSON.parse(json.stdout).packets_in, 3);
    assert.deepEqual(json.seen.options?.speed, { mode: 'multiplier', value: 2 });
    const quiet = await replay(['--in', 'p1=in.pcap', '-q']);
    assert.equal(quiet.code, 0);
    assert.equal(quiet.stdout, '');
    assert.ok(existsSync(path.join(quiet.out, 'stats.json')));
  });

  it('exits 2 with an internal error when the engine breaks the invariant', async () => {
    const r = await replay(['--in', 'p1=in.pcap', '-q'], { packets_out: 1 });
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      'dvrlab: replay invariant violated: 3 delivered > 1 frames out (internal error)\n',
    );
  });
});
