/**
 * `dvrlab bench` end to end on the real engine: the readable table and its accounting, the
 * JSON fields the README documents, setup mode's upcalls, the null replay, and bad inputs.
 * Runs are kept short (--min-seconds 0.05); no speed is asserted.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, tempDir } from './helpers.js';
import { udpFrame, writePcap } from '../src/packets.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const ADDON = existsSync(path.join(ROOT, 'native', 'index.js'));

function bench(args: string[]) {
  return spawnSync('node', [CLI, 'bench', ...args], { encoding: 'utf8' });
}

/** Destinations with a rule each; traffic to OTHER matches the drop rule. */
const DSTS = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5'];
const OTHER = '10.9.9.9';
/** Frames of the capture: 4 to each routed destination, 2 to OTHER. */
const FRAMES = DSTS.length * 4 + 2;
/** Distinct flows (megaflows): one per destination, routed or not. */
const FLOWS = DSTS.length + 1;

/** A one-bridge scenario with one rule per destination, and a capture of FRAMES frames. */
function setup(): { scenario: string; capture: string; dir: string } {
  const dir = tempDir({
    'sc.json': JSON.stringify({
      bridges: [
        {
          name: 'br0',
          ports: [
            { name: 'p1', ofport: 1, type: 'dummy' },
            { name: 'p2', ofport: 2, type: 'dummy' },
          ],
          flows: [
            ...DSTS.map((d) => `ip,nw_dst=${d},actions=output:2`),
            'priority=0,actions=drop',
          ],
        },
      ],
    }),
  });
  const l2 = { src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' };
  const frames: Buffer[] = [];
  for (let round = 0; round < 4; round++) {
    for (const d of DSTS) {
      frames.push(
        udpFrame(
          l2,
          { src: '10.1.0.1', dst: d },
          { sport: 1000, dport: 2000, payload: Buffer.alloc(18) },
        ),
      );
    }
  }
  for (let i = 0; i < 2; i++) {
    frames.push(
      udpFrame(
        l2,
        { src: '10.1.0.1', dst: OTHER },
        { sport: 1000, dport: 2000, payload: Buffer.alloc(18) },
      ),
    );
  }
  const capture = path.join(dir, 'in.pcap');
  writePcap(
    capture,
    frames.map((data, i) => ({ tsUsec: BigInt(1_000_000 + i), data })),
  );
  return { scenario: path.join(dir, 'sc.json'), capture, dir };
}

/** The fields `dvrlab bench --json` documents (README, `dvrlab bench`). */
const NUMBER_FIELDS = [
  'passes',
  'packets',
  'bytes',
  'seconds',
  'pps',
  'ns_per_packet',
  'gbps',
  'outputs',
  'delivered',
  'dropped',
  'emc_hits',
  'emc_hit_rate',
  'emc_bypassed',
  'megaflow_hits',
  'megaflow_hit_rate',
  'upcalls',
  'upcall_rate',
  'upcalls_per_pass',
  'upcalls_per_second',
  'megaflows',
  'subtables',
  'conntrack',
  'conntrack_new',
  'conntrack_new_per_second',
];

describe('dvrlab bench', { skip: !ADDON && 'the addon is not built' }, () => {
  const { scenario, capture, dir } = setup();

  it('prints the rate and an accounting that covers every packet', () => {
    const r = bench([scenario, '--in', `p1=${capture}`, '--min-seconds', '0.05']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    const rate = /^\s+Rate:\s+([\d.]+) (k|M|G)?pps, ([\d.]+) ns\/packet/m.exec(r.stdout);
    assert.ok(rate, r.stdout);
    assert.ok(Number(rate[1]) > 0, r.stdout);
    const acc =
      /Accounting:\s+(\d+) packets = (\d+) delivered \+ (\d+) dropped; (\d+) frames out/.exec(
        r.stdout,
      );
    assert.ok(acc, r.stdout);
    const [packets, delivered, dropped, out] = acc.slice(1).map(Number) as [
      number,
      number,
      number,
      number,
    ];
    const passes = Number(/Timed:\s+(\d+) passes/.exec(r.stdout)?.[1]);
    assert.ok(passes >= 3, r.stdout);
    assert.equal(packets, passes * FRAMES);
    assert.equal(delivered + dropped, packets);
    assert.equal(dropped, passes * 2, 'the frames to the unrouted address are dropped');
    assert.ok(out + dropped >= packets, 'every delivered packet left at least once');
    assert.match(r.stdout, /Megaflows:\s+6 in \d+ subtables/);
    assert.match(r.stdout, /EMC hits:\s+\d+ \([\d.]+ % of lookups\)/);
  });

  it('--json prints one object with the documented fields', () => {
    const r = bench([scenario, '--in', `br0/p1=${capture}`, '--min-seconds', '0.05', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    for (const f of NUMBER_FIELDS) assert.equal(typeof j[f], 'number', `field ${f}`);
    assert.equal(j.mode, 'forward');
    assert.equal(j.node, '');
    assert.deepEqual(j.ports, ['br0/p1']);
    assert.equal(j.inputs.length, 1);
    assert.equal(j.inputs[0].path, capture);
    assert.equal(j.inputs[0].records, FRAMES);
    assert.equal(j.inputs[0].frames, FRAMES);
    assert.equal(j.packets, j.passes * FRAMES);
    assert.equal(j.delivered + j.dropped, j.packets);
    assert.equal(j.emc_hits + j.megaflow_hits + j.upcalls, j.packets);
    assert.equal(j.upcalls, 0, 'the warm-up pass set every flow up');
    assert.ok(j.pps > 0);
    assert.equal(j.instructions, null);
    assert.equal(j.null, null);
    assert.equal(j.oracle, null);
    assert.deepEqual(j.notes, []);
  });

  it('--threads splits the flows over threads and adds their figures up', () => {
    const twoThreads = [scenario, '--in', `p1=${capture}`, '--threads', '2'];
    const r = bench([...twoThreads, '--min-seconds', '0.05', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.threads.length, 2);
    const sum = (k: string) =>
      j.threads.reduce((a: number, t: Record<string, number>) => a + t[k]!, 0);
    assert.equal(j.packets, sum('packets'));
    // Each thread runs its share of the frames (a flow stays on one) pass after pass.
    const shares = j.threads.map((t: Record<string, number>) => t.packets / t.passes);
    assert.equal(shares[0] + shares[1], FRAMES);
    for (const share of shares) assert.ok(Number.isInteger(share), `share ${share}`);
    // Every flow is set up on the one thread that sees it.
    assert.equal(j.megaflows, FLOWS);
    assert.equal(sum('megaflows'), FLOWS);
    assert.equal(j.delivered + j.dropped, j.packets);
    assert.ok(Math.abs(j.pps - sum('pps')) <= 1e-6 * j.pps);
    const table = bench([...twoThreads, '--min-seconds', '0']);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /Threads: +2: \S+ ?[kM]?pps \(\d+ frames\), /);
  });

  it('setup mode sets every distinct flow up again on each pass', () => {
    const r = bench([
      scenario,
      '--in',
      `p1=${capture}`,
      '--mode',
      'setup',
      '--passes',
      '4',
      '--json',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.mode, 'setup');
    assert.equal(j.passes, 4);
    assert.equal(j.upcalls, 4 * FLOWS);
    assert.equal(j.upcalls_per_pass, FLOWS);
    assert.equal(j.megaflows, FLOWS);
    assert.ok(j.upcalls_per_second > 0);
  });

  it('ovs_other_config emc-insert-inv-prob 0 leaves the EMC out, as in OVS', () => {
    const sc = JSON.parse(readFileSync(scenario, 'utf8'));
    sc.ovs_other_config = { 'emc-insert-inv-prob': '0' };
    const noEmc = path.join(dir, 'no-emc.json');
    writeFileSync(noEmc, JSON.stringify(sc));
    const r = bench([noEmc, '--in', `p1=${capture}`, '--min-seconds', '0.05', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.emc_hits, 0);
    assert.equal(j.megaflow_hits, j.packets);
    sc.ovs_other_config = { 'emc-insert-inv-prob': '-1' };
    writeFileSync(noEmc, JSON.stringify(sc));
    const bad = bench([noEmc, '--in', `p1=${capture}`]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^dvrlab: .*emc-insert-inv-prob.*expected a whole number/);
  });

  it('leaves the EMC out while few of its probes hit, unless --emc-always', () => {
    // 4000 connections to one destination: one megaflow, 4000 exact-match keys, so most
    // EMC probes miss.
    const l2 = { src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' };
    const frames = Array.from({ length: 4000 }, (_, i) =>
      udpFrame(
        l2,
        { src: '10.1.0.1', dst: DSTS[0] },
        { sport: 1024 + i, dport: 2000, payload: Buffer.alloc(18) },
      ),
    );
    const many = path.join(dir, 'many.pcap');
    writePcap(
      many,
      frames.map((data, i) => ({ tsUsec: BigInt(1_000_000 + i), data })),
    );
    const run = (extra: string[]) => {
      const r = bench([
        scenario,
        '--in',
        `p1=${many}`,
        '--passes',
        '4',
        '--min-seconds',
        '0',
        ...extra,
      ]);
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    };
    const j = JSON.parse(run(['--json']));
    assert.equal(j.emc_hits + j.megaflow_hits, j.packets);
    assert.equal(j.megaflows, 1);
    assert.ok(j.emc_bypassed > j.packets / 2, `${j.emc_bypassed} of ${j.packets} bypassed`);
    assert.ok(j.emc_bypassed <= j.megaflow_hits);
    assert.equal(j.delivered, j.packets);
    assert.match(run([]), /^ +Megaflow hits: +\d+ \(.*; \d+ in bursts that left the EMC out/m);
    const always = JSON.parse(run(['--json', '--emc-always']));
    assert.equal(always.emc_bypassed, 0);
    assert.equal(always.emc_hits + always.megaflow_hits, always.packets);
    assert.equal(always.delivered, always.packets);
  });

  it('ports on two nodes are refused: a benchmark measures one node', () => {
    const r = bench(['devstack-dvr', '--in', `test02=${capture}`, '--in', `test04=${capture}`]);
    assert.equal(r.status, 1, r.stdout);
    assert.match(
      r.stderr,
      /^dvrlab: --in test04=.*is on node node3, .* on node node2; a benchmark measures one node\n$/,
    );
  });

  it('--map maps the capture onto the topology as replay --map does, node by node', () => {
    const c = path.join(dir, 'hosts.pcap');
    const l2 = { src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' };
    const frames: Buffer[] = [];
    for (let i = 0; i < 10; i++) {
      const [src, dst] =
        i % 2 === 0 ? ['192.168.7.1', '192.168.7.2'] : ['192.168.7.2', '192.168.7.1'];
      frames.push(
        udpFrame(l2, { src, dst }, { sport: 5000, dport: 5001, payload: Buffer.alloc(18) }),
      );
    }
    writePcap(
      c,
      frames.map((data, i) => ({ tsUsec: BigInt(1 + i), data })),
    );
    const r = bench(['devstack-dvr', '--map', '--in', c, '--min-seconds', '0.05', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.node, null);
    assert.deepEqual(j.inputs, [{ port: null, path: c }]);
    assert.equal(j.map.records, 10);
    assert.equal(j.map.mapped, 10);
    assert.equal(j.map.hosts, 2);
    assert.equal(j.frames, 10);
    assert.ok(j.nodes.length >= 1);
    const sum = (k: string) =>
      j.nodes.reduce((a: number, n: Record<string, number>) => a + n[k]!, 0);
    assert.equal(sum('frames'), 10);
    assert.equal(sum('packets'), j.packets);
    assert.equal(j.delivered + j.dropped, j.packets);
    for (const n of j.nodes) {
      assert.match(n.node, /^node[123]$/);
      assert.equal(n.packets, n.passes * n.frames);
      for (const p of n.ports) assert.ok(p.startsWith(`${n.node}/`), p);
    }
    const text = bench(['devstack-dvr', '--map', '--in', c, '--min-seconds', '0.05']);
    assert.equal(text.status, 0, text.stderr);
    assert.match(
      text.stdout,
      /Map:\s+10 records, 10 mapped onto the topology, 0 skipped; 2 hosts/,
    );
    const raw = bench([scenario, '--map', '--in', c]);
    assert.equal(raw.status, 1);
    assert.match(
      raw.stderr,
      /^dvrlab: --map: .* is a raw scenario; --map needs a Neutron topology/,
    );
  });

  it('--null times reading the capture and writing it back', () => {
    const r = bench([
      scenario,
      '--in',
      `p1=${capture}`,
      '--min-seconds',
      '0.05',
      '--null',
      '--json',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const n = JSON.parse(r.stdout).null;
    assert.ok(n.passes >= 1);
    assert.equal(n.packets, n.passes * FRAMES);
    assert.ok(n.pps > 0 && n.mb_per_second > 0);
  });

  it('--oracle on a multi-node scenario says why it is skipped and goes on', () => {
    const c = path.join(dir, 'arp.pcap');
    const arp = Buffer.from(
      'ffffffffffff' +
        'fa163e000001' +
        '0806' +
        '0001080006040001' +
        'fa163e000001' +
        '0a000008' +
        '000000000000' +
        '0a000001',
      'hex',
    );
    writePcap(c, [{ tsUsec: 1n, data: arp }]);
    const r = bench([
      'devstack-dvr',
      '--in',
      `test02=${c}`,
      '--min-seconds',
      '0.05',
      '--oracle',
      '--json',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.node, 'node2');
    assert.equal(j.oracle, null);
    assert.equal(j.notes.length, 1);
    assert.match(j.notes[0], /^oracle: .*one-node scenarios.*; skipped$/);
  });

  for (const [what, args, expect] of [
    [
      'a missing capture',
      (s: string) => [s, '--in', 'p1=/nonexistent/in.pcap'],
      /cannot read .*no such file/,
    ],
    [
      'a port on no node',
      (s: string, c: string) => [s, '--in', `nosuch=${c}`],
      /--in nosuch=.*nosuch/,
    ],
    ['--in without a file', (s: string) => [s, '--in', 'p1'], /expected PORTREF=FILE/],
    [
      'a negative --min-seconds',
      (s: string, c: string) => [s, '--in', `p1=${c}`, '--min-seconds', '-1'],
      /min-seconds/,
    ],
    ['--threads 0', (s: string, c: string) => [s, '--in', `p1=${c}`, '--threads', '0'], /threads/],
    [
      '--threads beyond 64',
      (s: string, c: string) => [s, '--in', `p1=${c}`, '--threads', '65'],
      /threads.*1 to 64/,
    ],
    [
      'an unknown --mode',
      (s: string, c: string) => [s, '--in', `p1=${c}`, '--mode', 'fast'],
      /mode/,
    ],
  ] as const) {
    it(`${what} is one line on stderr and exit 1`, () => {
      const r = bench(args(scenario, capture) as string[]);
      assert.equal(r.status, 1, r.stdout);
      assert.equal(r.stdout, '');
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^dvrlab: /);
      assert.match(lines[0]!, expect);
    });
  }

  it('a corrupt capture is one line naming the file and the record, exit 1', () => {
    const cut = path.join(dir, 'cut.pcap');
    const bytes = readFileSync(capture);
    writeFileSync(cut, bytes.subarray(0, bytes.length - 9));
    const r = bench([scenario, '--in', `p1=${cut}`, '--min-seconds', '0.05']);
    assert.equal(r.status, 1, r.stdout);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0]!,
      new RegExp(`^dvrlab: ${cut.replace(/[.]/g, '\\.')}: .*record ${FRAMES}`),
    );
  });
});
