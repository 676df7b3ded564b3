/**
 * `dvrlab replay` end to end on the real engine: looping, pacing, several inputs merged by
 * time, capture formats, and bad captures.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, sharedDir, tempDir } from './helpers.js';
import { readPcap } from './oracle/packets.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const ADDON = existsSync(path.join(ROOT, 'native', 'index.js'));

function replay(args: string[]) {
  return spawnSync('node', [CLI, 'replay', ...args], { encoding: 'utf8' });
}

/** A one-bridge scenario that forwards everything from p1 to p2. */
function forwardScenario(): string {
  const dir = tempDir({
    'sc.json': JSON.stringify({
      bridges: [
        {
          name: 'br0',
          ports: [
            { name: 'p1', ofport: 1, type: 'dummy' },
            { name: 'p2', ofport: 2, type: 'dummy' },
          ],
          flows: ['in_port=1,actions=output:2'],
        },
      ],
    }),
  });
  return path.join(dir, 'sc.json');
}

describe('replay on the engine', { skip: !ADDON && 'the addon is not built' }, () => {
  const shared = sharedDir();
  const example = path.join(shared, 'tools', 'ovs-oracle-examples', 'l2-rewrite');

  it('--loop N sends every input N times, in order', () => {
    const out = path.join(tempDir(), 'out');
    const r = replay([
      path.join(example, 'scenario.json'),
      '--in',
      `p1=${path.join(example, 'input.pcap')}`,
      '--out',
      out,
      '--loop',
      '3',
      '--json',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const stats = JSON.parse(r.stdout);
    assert.equal(stats.packets_in, 30);
    assert.equal(stats.delivered, 30);
    const inp = readPcap(path.join(example, 'input.pcap'));
    const outp = readPcap(path.join(out, 'p2.pcap'));
    assert.equal(outp.length, 30);
    for (let i = 0; i < 30; i++) {
      const want = Buffer.concat([
        inp[i % 10]!.data.subarray(0, 6),
        Buffer.from('0200000000aa', 'hex'),
        inp[i % 10]!.data.subarray(12),
      ]);
      assert.deepEqual(outp[i]!.data, want);
    }
    // Time keeps moving forward from one pass to the next.
    for (let i = 1; i < outp.length; i++) assert.ok(outp[i]!.tsUsec > outp[i - 1]!.tsUsec);
  });

  it('--pps paces the run', () => {
    const out = path.join(tempDir(), 'out');
    const r = replay([
      path.join(example, 'scenario.json'),
      '--in',
      `p1=${path.join(example, 'input.pcap')}`,
      '--out',
      out,
      '--pps',
      '50',
      '--json',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const stats = JSON.parse(r.stdout);
    // 10 packets at 50 pps: the last one is due 180 ms after the first.
    assert.ok(stats.seconds >= 0.17, `took ${stats.seconds} s`);
  });

  it('reads pcapng, nanosecond and big-endian captures and Linux cooked frames', () => {
    for (const [file, count] of [
      ['pcpp-nsec-bigendian.pcap', 0],
      ['pcpp-pcapng-multi-if.pcapng', 0],
      ['pcpp-sll.pcap', 0],
    ] as const) {
      const cap = path.join(shared, 'captures', file);
      const out = path.join(tempDir(), 'out');
      const r = replay([forwardScenario(), '--in', `p1=${cap}`, '--out', out, '--json']);
      assert.equal(r.status, 0, `${file}: ${r.stderr}`);
      const stats = JSON.parse(r.stdout);
      assert.ok(stats.packets_in > count, file);
      const dropped = Object.values(stats.dropped as Record<string, number>).reduce(
        (a, b) => a + b,
        0,
      );
      assert.equal(stats.delivered + dropped, stats.packets_in, `${file}: accounting`);
      assert.equal(readPcap(path.join(out, 'p2.pcap')).length, stats.delivered, file);
    }
  });

  it('a capture cut short is one clear error, exit 1', () => {
    const cap = path.join(shared, 'captures', 'suri-cut-short.pcap');
    const r = replay([forwardScenario(), '--in', `p1=${cap}`, '--out', path.join(tempDir(), 'o')]);
    assert.equal(r.status, 1);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^dvrlab: .*suri-cut-short\.pcap: .*(cut|truncated)/);
  });

  it('a file that is not a capture is one clear error, exit 1', () => {
    const r = replay([
      forwardScenario(),
      '--in',
      `p1=${forwardScenario()}`,
      '--out',
      path.join(tempDir(), 'o'),
    ]);
    assert.equal(r.status, 1);
    assert.match(r.stderr.trim(), /^dvrlab: .*sc\.json: not a pcap or pcapng file/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });

  it('writes stats.json that accounts for every packet', () => {
    const out = path.join(tempDir(), 'out');
    const r = replay([
      forwardScenario(),
      '--in',
      `p1=${path.join(example, 'input.pcap')}`,
      '--out',
      out,
      '-q',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const stats = JSON.parse(readFileSync(path.join(out, 'stats.json'), 'utf8'));
    for (const k of [
      'packets_in',
      'packets_out',
      'bytes_in',
      'bytes_out',
      'dropped',
      'seconds',
      'pps',
      'emc_hits',
      'emc_bypassed',
      'megaflow_hits',
      'upcalls',
      'megaflows',
      'per_port',
    ]) {
      assert.ok(k in stats, k);
    }
    assert.equal(stats.upcalls, 1);
    assert.equal(stats.emc_hits + stats.megaflow_hits, 9);
    assert.equal(stats.emc_bypassed, 0, 'too few packets to judge the EMC');
    assert.deepEqual(stats.per_port['br0/p2'], { rx: 0, tx: 10 });
  });

  it('--trace-packet traces a packet with the conntrack state the run built', () => {
    const ex = path.join(shared, 'tools', 'ovs-oracle-examples', 'snat-ct');
    const out = path.join(tempDir(), 'out');
    // Packets 1-3 are the VM's queries (committed, SNATed); packet 4 is the first reply.
    const r = replay([
      path.join(ex, 'scenario.json'),
      '--in',
      `int0=${path.join(ex, 'int0-in.pcap')}`,
      '--in',
      `ext0=${path.join(ex, 'ext0-in.pcap')}`,
      '--out',
      out,
      '--trace-packet',
      '4',
      '--names',
      '-q',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const trace = readFileSync(path.join(out, 'trace.txt'), 'utf8');
    // The reply is un-NATed by the real connection and resumes as established, in reply.
    assert.match(trace, /^Datapath actions: ct\(zone=1,nat\),recirc\(0x2\)$/m);
    assert.match(
      trace,
      /recirc\(0x2\) - resume conntrack with ct_state=est\|rpl\|trk\|dnat ct_zone=1/,
    );
    assert.match(
      trace,
      /^Flow: recirc_id=0x2,ct_state=est\|rpl\|trk\|dnat,ct_zone=1,eth,udp,in_port=ext0,.*nw_dst=10\.0\.0\.1,/m,
    );
    assert.match(trace, / 2\. ct_state=\+est\+trk,ip, priority 10/);
    assert.match(trace, /^Emitted on br-ex\/int0: 60 bytes$/m);
    assert.ok(existsSync(path.join(out, 'trace.json')));
    // The stats stay the run's own.
    const stats = JSON.parse(readFileSync(path.join(out, 'stats.json'), 'utf8'));
    assert.equal(stats.trace, undefined);
    assert.equal(stats.packets_in, 7);
  });

  it("writes every bridge's flows with the counters of the run", () => {
    const ex = path.join(shared, 'tools', 'ovs-oracle-examples', 'snat-ct');
    const out = path.join(tempDir(), 'out');
    const r = replay([
      path.join(ex, 'scenario.json'),
      '--in',
      `int0=${path.join(ex, 'int0-in.pcap')}`,
      '--in',
      `ext0=${path.join(ex, 'ext0-in.pcap')}`,
      '--out',
      out,
      '-q',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const flows = readFileSync(path.join(out, 'br-ex.flows'), 'utf8');
    assert.match(
      flows,
      /table=2, n_packets=3, n_bytes=180, .*priority=10,ct_state=\+est\+trk,ip actions=/,
    );
    assert.match(flows, /table=2, n_packets=1, n_bytes=60, .*priority=0 actions=drop/);
  });
});
