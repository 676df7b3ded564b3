/**
 * Hostile and unusual packets through the seed devstack, each forwarded or dropped as Open
 * vSwitch and Linux would, every drop under a named reason: TTL 0 and 1 at a DVR router,
 * IPv4 options, headers that lie about their length or are cut short, zero-length and jumbo
 * frames, an IPv6 extension-header chain across the VXLAN fabric, and VXLAN with bad flags
 * or reserved bits set arriving on a node's underlay.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, tempDir } from './helpers.js';
import { readPcap } from './oracle/packets.js';
import { demoPaths } from '../src/demo/capture.js';
import { loadTopologyArgument } from '../src/neutron/load.js';
import { icmp4, ipv4, ipv6, udp6, writePcap } from '../src/packets.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const ADDON = existsSync(path.join(ROOT, 'native', 'index.js'));

const packets = demoPaths(loadTopologyArgument('devstack-dvr')).flatMap((p) => p.packets);
const find = (port: string, label: string) =>
  packets.find((k) => k.port === port && k.label.startsWith(label))!.frame;
/** test02's ARP for its gateway: the router answers, so br-int learns the router's MAC. */
const ARP_GW = find('test02', 'ARP who-has 10.0.0.1');
/** Ethernet headers of test02 -> its router (10.1.0.10 is test04) and -> test05 (on another node). */
const TO_ROUTER = find('test02', 'ICMP echo request 10.0.0.8 -> 10.1.0.10').subarray(0, 14);
const TO_TEST05 = find('test02', 'ICMP echo request 10.0.0.8 -> 10.0.0.4').subarray(0, 14);

interface Run {
  stats: {
    delivered: number;
    dropped: Record<string, number>;
    generated: number;
    per_port: Record<string, { rx: number; tx: number }>;
  };
  out: string;
}

/** Replays `frames` on `port` (after test02's ARP for its gateway) and returns the stats. */
function run(frames: Buffer[], port = 'test02'): Run {
  const dir = tempDir();
  const records = (port === 'test02' ? [ARP_GW, ...frames] : frames).map((data, i) => ({
    tsUsec: 1_000_000n + BigInt(i) * 1000n,
    data,
  }));
  writePcap(path.join(dir, 'in.pcap'), records);
  const inputs = ['--in', `${port}=${path.join(dir, 'in.pcap')}`];
  const out = path.join(dir, 'out');
  const r = spawnSync('node', [CLI, 'replay', 'devstack-dvr', ...inputs, '--out', out, '--json'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return { stats: JSON.parse(r.stdout), out };
}

/** What VM `vm` received, on whichever node it runs. */
function received(r: Run, vm: string): Buffer[] {
  for (const node of ['node1', 'node2', 'node3']) {
    const f = path.join(r.out, node, `${vm}.pcap`);
    if (existsSync(f)) return readPcap(f).map((x) => x.data);
  }
  return [];
}

const echo = (id: number, size = 32) =>
  icmp4({ type: 8, rest: (id << 16) | 1, payload: Buffer.alloc(size, 7) });
const routed = (o: Partial<Parameters<typeof ipv4>[0]>, payload: Buffer) =>
  Buffer.concat([TO_ROUTER, ipv4({ src: '10.0.0.8', dst: '10.1.0.10', proto: 1, ...o }, payload)]);

describe('bad packets through devstack-dvr', { skip: !ADDON && 'no addon' }, () => {
  it('a routed echo arrives at test04 with its TTL decremented once (the baseline)', () => {
    const r = run([routed({}, echo(1))]);
    const got = received(r, 'test04');
    assert.equal(got.length, 1);
    assert.equal(got[0]![14 + 8], 63);
    assert.deepEqual(r.stats.dropped, {});
  });

  for (const ttl of [0, 1]) {
    it(`TTL ${ttl}: the router drops it as ttl_expired and sends ICMP time exceeded back`, () => {
      const r = run([routed({ ttl }, echo(2))]);
      assert.deepEqual(r.stats.dropped, { ttl_expired: 1 });
      assert.equal(received(r, 'test04').length, 0);
      const back = received(r, 'test02').filter((f) => f.readUInt16BE(12) === 0x0800);
      assert.equal(back.length, 1);
      assert.equal(back[0]![14 + 9], 1); // ICMP
      assert.equal(back[0]![14 + 20], 11); // time exceeded
      assert.equal(r.stats.generated, 1);
    });
  }

  it('IPv4 options are forwarded with the packet, as Linux and OVS do', () => {
    const r = run([routed({ options: Buffer.from([1, 1, 1, 0]) }, echo(3))]);
    const got = received(r, 'test04');
    assert.equal(got.length, 1);
    assert.equal(got[0]![14] & 0x0f, 6); // IHL 6: the options are there
    assert.deepEqual(got[0]!.subarray(34, 38), Buffer.from([1, 1, 1, 0]));
  });

  it('a total length beyond the frame, or a header cut short, is dropped by the router', () => {
    const lies = routed({ totalLength: 400 }, echo(4));
    const cut = routed({}, echo(5)).subarray(0, 24);
    const shortIhl = Buffer.from(routed({}, echo(6)));
    shortIhl[14] = 0x44; // header length 16 bytes
    for (const [what, frame] of [
      ['length lies', lies],
      ['cut', cut],
      ['IHL 4', shortIhl],
    ] as const) {
      const r = run([frame]);
      assert.deepEqual(r.stats.dropped, { namespace_malformed: 1 }, what);
      assert.equal(received(r, 'test04').length, 0, what);
    }
  });

  it('a zero-length record is a runt; a 9000-byte frame crosses the fabric whole', () => {
    const jumbo = Buffer.concat([
      TO_TEST05,
      ipv4({ src: '10.0.0.8', dst: '10.0.0.4', proto: 1 }, echo(7, 8958)),
    ]);
    assert.equal(jumbo.length, 9000);
    const r = run([Buffer.alloc(0), jumbo]);
    assert.deepEqual(r.stats.dropped, { runt: 1 });
    const got = received(r, 'test05');
    assert.equal(got.length, 1);
    assert.ok(got[0]!.equals(jumbo));
  });

  it('an IPv6 extension-header chain crosses the VXLAN fabric unchanged', () => {
    const ip = { src: 'fda0:6cec:a994::8', dst: 'fda0:6cec:a994::4' };
    const pkt = Buffer.concat([
      Buffer.concat([TO_TEST05.subarray(0, 12), Buffer.from([0x86, 0xdd])]),
      ipv6(
        {
          ...ip,
          nextHeader: 17,
          ext: [
            { type: 0, data: Buffer.from([1, 4, 0, 0, 0, 0]) }, // hop-by-hop, PadN
            { type: 60, data: Buffer.from([1, 4, 0, 0, 0, 0]) }, // destination options
          ],
        },
        udp6(ip, { sport: 5000, dport: 53, payload: Buffer.from('dvrlab') }),
      ),
    ]);
    const r = run([pkt]);
    const got = received(r, 'test05');
    assert.equal(got.length, 1);
    assert.ok(got[0]!.equals(pkt));
  });

  it('VXLAN with bad flags or reserved bits set is dropped as bad_vxlan, as OVS does', () => {
    const base = run([routed({}, echo(8))]);
    const wire = readPcap(path.join(base.out, 'node2', 'underlay.pcap')).map((x) => x.data);
    assert.equal(wire.length, 1);
    const vx = 14 + 20 + 8; // outer Ethernet, IPv4, UDP
    const good = Buffer.from(wire[0]!);
    good.writeUInt16BE(0, 14 + 20 + 6); // no outer UDP checksum to keep right
    const noI = Buffer.from(good);
    noI[vx] = 0x00; // the I flag cleared
    const reserved = Buffer.from(good);
    reserved[vx + 7] = 0x01; // the reserved byte after the VNI
    const flags = Buffer.from(good);
    flags[vx + 1] = 0x80; // a reserved flag bit
    const r = run([good, noI, reserved, flags], 'node3/underlay');
    assert.deepEqual(r.stats.dropped, { bad_vxlan: 3 });
    assert.equal(received(r, 'test04').length, 1);
  });
});
