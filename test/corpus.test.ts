/**
 * Every capture of the shared corpus replayed through the seed devstack (three nodes, DVR,
 * VXLAN, SNAT and floating IPs), as a VM's traffic and as traffic from outside: each run
 * accounts for every packet it read (delivered, queued or dropped under a named reason),
 * and each corrupt file is one clear error with its position, exit 1, and a stats.json that
 * says the run is incomplete.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT, sharedDir, tempDir } from './helpers.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const ADDON = existsSync(path.join(ROOT, 'native', 'index.js'));

/** Every drop reason the engine names (stats.json `dropped` keys). */
const REASONS = new Set(
  [
    'runt truncated unsupported_linktype no_match action_drop ttl_expired recursion_too_deep',
    'too_many_resubmits normal_learned_on_input_port normal_reserved_multicast',
    'normal_vlan_not_allowed output_to_input_port tunnel_no_route tunnel_no_neighbor',
    'tunnel_no_port bad_vxlan bad_tunnel_checksum ct_table_full recirculation_too_deep',
    'no_such_port namespace_not_for_us namespace_unsupported namespace_consumed',
    'namespace_no_neighbor namespace_unreachable namespace_neigh_queue_full tx_failed',
  ]
    .join(' ')
    .split(' '),
);

interface ManifestFile {
  name: string;
  packets: number | null;
  capinfos_ok: boolean;
}

function manifest(): ManifestFile[] {
  const file = path.join(sharedDir(), 'captures', 'manifest.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { files: ManifestFile[] }).files;
}

function replay(port: string, file: string) {
  const out = path.join(tempDir(), 'out');
  const r = spawnSync(
    'node',
    [CLI, 'replay', 'devstack-dvr', '--in', `${port}=${file}`, '--out', out, '-q'],
    { encoding: 'utf8' },
  );
  const statsFile = path.join(out, 'stats.json');
  const stats = existsSync(statsFile) ? JSON.parse(readFileSync(statsFile, 'utf8')) : undefined;
  return { ...r, stats };
}

function assertAccounted(what: string, stats: Record<string, unknown>): void {
  const dropped = stats.dropped as Record<string, number>;
  for (const reason of Object.keys(dropped)) {
    assert.ok(REASONS.has(reason), `${what}: unnamed drop reason ${reason}`);
  }
  const sum = Object.values(dropped).reduce((a, b) => a + b, 0);
  assert.equal(
    (stats.delivered as number) + sum + (stats.queued as number),
    stats.packets_in,
    `${what}: in = delivered + dropped + queued`,
  );
}

describe('the capture corpus through devstack-dvr', { skip: !ADDON && 'no addon' }, () => {
  const files = manifest();

  it('has the corpus', () => assert.ok(files.length >= 50, `${files.length} files`));

  for (const f of files.filter((x) => x.capinfos_ok)) {
    it(`${f.name}: every packet accounted for`, () => {
      const file = path.join(sharedDir(), 'captures', f.name);
      // Small files go in both as a VM's traffic and from outside; large ones once.
      const ports = statSync(file).size < 1 << 20 ? ['test01', 'node2/uplink'] : ['test03'];
      for (const port of ports) {
        const r = replay(port, file);
        const what = `${f.name} on ${port}`;
        assert.equal(r.status, 0, `${what}: ${r.stderr}`);
        assert.equal(r.stats.complete, true, what);
        assert.equal(r.stats.packets_in, f.packets, `${what}: every record read`);
        assertAccounted(what, r.stats);
      }
    });
  }

  for (const f of files.filter((x) => !x.capinfos_ok)) {
    it(`${f.name}: one clear error with its position, exit 1, nothing claimed complete`, () => {
      const file = path.join(sharedDir(), 'captures', f.name);
      const r = replay('test01', file);
      assert.equal(r.status, 1, f.name);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.ok(lines[0]!.startsWith(`dvrlab: ${file}: `), lines[0]);
      assert.match(lines[0]!, /at byte \d+: .*(expected|exceeds|needs|overruns)/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      if (r.stats !== undefined) {
        // Records before the damage were forwarded; the stats say the run stopped early.
        assert.equal(r.stats.complete, false);
        assert.equal(r.stats.error, lines[0]!.slice('dvrlab: '.length));
        assertAccounted(f.name, r.stats);
      }
    });
  }

  it('a capture still being written is read to where it ends, or stops with one error', async () => {
    const file = path.join(tempDir(), 'growing.pcap');
    // A writer appends 64-byte records in uneven pieces (a record can be half written when
    // the reader gets there) while the replay reads.
    const writer = spawn(
      'node',
      [
        '-e',
        `const fs = require('fs');
         const fd = fs.openSync(${JSON.stringify(file)}, 'w');
         const h = Buffer.alloc(24); h.writeUInt32LE(0xa1b2c3d4, 0); h.writeUInt16LE(2, 4);
         h.writeUInt16LE(4, 6); h.writeUInt32LE(65535, 16); h.writeUInt32LE(1, 20);
         fs.writeSync(fd, h);
         const rec = Buffer.alloc(80); rec.writeUInt32LE(64, 8); rec.writeUInt32LE(64, 12);
         rec.fill(0xff, 16, 22); rec.writeUInt16BE(0x0800, 28);
         let n = 0;
         const t = setInterval(() => {
           for (let i = 0; i < 200; i++) fs.writeSync(fd, rec, 0, 80);
           fs.writeSync(fd, rec, 0, 37); fs.writeSync(fd, rec, 37, 43);
           if (++n === 100) { clearInterval(t); fs.closeSync(fd); }
         }, 5);`,
      ],
      { stdio: 'ignore' },
    );
    await new Promise((r) => setTimeout(r, 100));
    const r = replay('test01', file);
    await new Promise((r) => writer.on('exit', r));
    assert.ok(r.status === 0 || r.status === 1, `exit ${r.status}: ${r.stderr}`);
    if (r.status === 0) {
      assert.equal(r.stats.complete, true);
    } else {
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /growing\.pcap: truncated record \d+ at byte \d+/);
      assert.equal(r.stats.complete, false);
    }
    assert.ok(r.stats.packets_in > 0 && r.stats.packets_in <= 20100, `${r.stats.packets_in}`);
    assertAccounted('growing.pcap', r.stats);
  });
});

describe('table limits on a replay', { skip: !ADDON && 'no addon' }, () => {
  it('--flow-limit caps the megaflows, counts refusals and loses no packet', () => {
    const dir = tempDir({
      'sc.json': JSON.stringify({
        bridges: [
          {
            name: 'br0',
            ports: [
              { name: 'p1', ofport: 1 },
              { name: 'p2', ofport: 2 },
            ],
            flows: ['actions=NORMAL'],
          },
        ],
      }),
    });
    const file = path.join(sharedDir(), 'captures', 'mercury-capture2.pcap');
    const out = path.join(dir, 'out');
    const args = ['replay', path.join(dir, 'sc.json'), '--in', `p1=${file}`, '--out', out];
    const r = spawnSync('node', [CLI, ...args, '--flow-limit', '50', '--ct-max', '10', '--json'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const stats = JSON.parse(r.stdout);
    assert.ok(stats.megaflows <= 50, `${stats.megaflows} megaflows`);
    assert.equal(stats.limits.megaflow_limit, 50);
    assert.equal(stats.limits.conntrack_limit, 10);
    assert.ok(stats.limits.megaflows_refused > 100, `${stats.limits.megaflows_refused} refused`);
    assert.equal(stats.limits.max_idle_ms, null);
    assertAccounted('--flow-limit 50', stats);
    // The same run without a limit forwards exactly the same packets.
    const free = spawnSync('node', [CLI, ...args, '--json'], { encoding: 'utf8' });
    assert.equal(free.status, 0, free.stderr);
    const base = JSON.parse(free.stdout);
    assert.equal(stats.delivered, base.delivered);
    assert.equal(stats.packets_out, base.packets_out);
    assert.equal(base.limits.megaflows_refused, 0);
  });

  it('refuses a limit that is not a whole number >= 1', () => {
    const r = spawnSync('node', [CLI, 'replay', 'devstack-dvr', '--flow-limit', '0'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--flow-limit.*expected a whole number >= 1/);
  });
});
