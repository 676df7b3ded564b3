/**
 * `dvrlab replay --map` end to end on the built CLI: a real capture pushed through the seed
 * devstack, a handcrafted capture whose conversations take the four DVR packet paths of the
 * reference (§5), and the usage error for a scenario that is not a topology.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, sharedDir, tempDir } from './helpers.js';
import {
  ETH_ARP,
  ETH_IPV6,
  IPPROTO_UDP,
  arp,
  eth,
  inetChecksum,
  ipv6,
  readPcap,
  udp6,
  udpFrame,
  writePcap,
} from '../src/packets.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const ADDON = existsSync(path.join(ROOT, 'native', 'index.js'));

function run(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
}

interface MapStats {
  records: number;
  mapped: number;
  skipped: Record<string, number>;
  checksums_fixed: number;
  hosts: number;
  host_table: { vm: Record<string, number>; outside: number; outside_remapped: number };
}

interface Stats {
  packets_in: number;
  delivered: number;
  queued: number;
  dropped: Record<string, number>;
  map: MapStats;
}

interface MapHost {
  host: string;
  kind: string;
  name: string;
  node: string | null;
  port: string | null;
  mac: string;
  ip: string | null;
}

const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);

// ---- reading frames -------------------------------------------------------------------

const macAt = (f: Buffer, at: number) =>
  [...f.subarray(at, at + 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
const ipAt = (f: Buffer, at: number) => [...f.subarray(at, at + 4)].join('.');

/** An untagged Ethernet/IPv4/UDP frame's fields. */
function udpOf(f: Buffer) {
  return {
    dlDst: macAt(f, 0),
    dlSrc: macAt(f, 6),
    type: f.readUInt16BE(12),
    src: ipAt(f, 26),
    dst: ipAt(f, 30),
    ttl: f[22],
    sport: f.readUInt16BE(34),
    dport: f.readUInt16BE(36),
  };
}

/** Recomputes the IPv4 header checksum and the UDP/TCP/ICMP checksum of a frame. */
function checksumsValid(f: Buffer): boolean {
  if (f.readUInt16BE(12) !== 0x0800) return true;
  const ihl = (f[14]! & 0x0f) * 4;
  if (inetChecksum(f.subarray(14, 14 + ihl)) !== 0) return false;
  const total = f.readUInt16BE(16);
  const proto = f[23]!;
  const seg = f.subarray(14 + ihl, 14 + total);
  if (proto === IPPROTO_UDP && seg.readUInt16BE(6) === 0) return true;
  if (proto === 1) return inetChecksum(seg) === 0;
  const pseudo = Buffer.alloc(12);
  f.copy(pseudo, 0, 26, 34);
  pseudo[9] = proto;
  pseudo.writeUInt16BE(seg.length, 10);
  return inetChecksum(pseudo, seg) === 0;
}

function frames(out: string, file: string): Buffer[] {
  const p = path.join(out, file);
  assert.ok(existsSync(p), `${file} was written`);
  return readPcap(p).map((r) => r.data);
}

/** The one UDP frame of `file` with these ports. */
function udpFrameIn(out: string, file: string, sport: number, dport: number): Buffer {
  const found = frames(out, file).filter((f) => {
    if (f.readUInt16BE(12) !== 0x0800 || f[23] !== IPPROTO_UDP) return false;
    return f.readUInt16BE(34) === sport && f.readUInt16BE(36) === dport;
  });
  assert.equal(found.length, 1, `${file}: one UDP ${sport} -> ${dport} frame`);
  return found[0]!;
}

// The seed devstack's values (reference §4).
const T1 = { mac: 'fa:16:3e:5a:6e:54', ip: '10.0.0.7' }; // test01, node1, private
const T2 = { mac: 'fa:16:3e:76:47:75', ip: '10.0.0.8' }; // test02, node2, private, FIP
const T3 = { mac: 'fa:16:3e:3b:8a:d1', ip: '10.1.0.12' }; // test03, node2, private2
const T4 = { mac: 'fa:16:3e:23:c5:28', ip: '10.1.0.10' }; // test04, node3, private2
const GW1 = 'fa:16:3e:9c:cf:de'; // qr-aae8ab78-22, 10.0.0.1
const GW6 = 'fa:16:3e:5e:30:73'; // qr-12fa6289-8f, fda0:6cec:a994::1 (private's IPv6 subnet)
const GW2 = 'fa:16:3e:5c:3d:f9'; // qr-2909fe1f-46, 10.1.0.1
const QG = { mac: 'fa:16:3e:af:c7:ce', ip: '172.24.4.3' }; // router1's SNAT address, node1
const FG = 'fa:16:3e:0f:6b:2e'; // node2's fg- port
const FIP = '172.24.4.12';
const EXT = '02:24:04:00:00:01'; // the external gateway

describe('replay --map', { skip: !ADDON && 'the addon is not built' }, () => {
  it('pushes a real capture through devstack-dvr, every record mapped or skipped by reason', () => {
    const shared = sharedDir();
    const capture = path.join(shared, 'captures', 'pcpp-example-http.pcap');
    const manifest = JSON.parse(
      readFileSync(path.join(shared, 'captures', 'manifest.json'), 'utf8'),
    ) as { files: { name: string; packets: number }[] };
    const records = manifest.files.find((f) => f.name === 'pcpp-example-http.pcap')!.packets;
    const outs = [path.join(tempDir(), 'a'), path.join(tempDir(), 'b')];
    const results = outs.map((out) =>
      run(['replay', 'devstack-dvr', '--map', '--in', capture, '--out', out]),
    );
    for (const r of results) assert.equal(r.status, 0, r.stderr);

    const out = outs[0]!;
    const stats = JSON.parse(readFileSync(path.join(out, 'stats.json'), 'utf8')) as Stats;
    const m = stats.map;
    assert.equal(m.records, records, 'every record of the capture was read');
    assert.equal(m.mapped + sum(m.skipped), m.records, 'records = mapped + skipped');
    assert.equal(stats.packets_in, m.mapped, 'what was mapped was injected');
    assert.equal(stats.delivered + sum(stats.dropped) + stats.queued, stats.packets_in);
    assert.ok(
      stats.delivered >= 0.95 * m.mapped,
      `${stats.delivered} of ${m.mapped} delivered; dropped ${JSON.stringify(stats.dropped)}`,
    );
    // The capture host (10.0.0.6, the first one seen) is a VM; its checksums were offloaded
    // (unfilled in the capture), and are right in what the cloud delivers.
    const hosts = JSON.parse(readFileSync(path.join(out, 'map.json'), 'utf8')) as MapHost[];
    assert.equal(hosts.length, m.hosts);
    assert.deepEqual(
      { host: hosts[0]!.host, kind: hosts[0]!.kind, name: hosts[0]!.name, ip: hosts[0]!.ip },
      { host: '10.0.0.6', kind: 'vm', name: 'test01', ip: T1.ip },
    );
    assert.equal(hosts.filter((h) => h.kind === 'outside').length, m.host_table.outside);
    assert.ok(m.checksums_fixed > 0);
    const delivered = frames(out, 'node1/test01.pcap');
    assert.ok(delivered.length > 1000);
    assert.deepEqual(
      delivered.filter((f) => !checksumsValid(f)).length,
      0,
      'every frame test01 receives has valid checksums',
    );
    // test01 has no floating IP: what it sends to the web leaves node1 SNAT'ed.
    const up = frames(out, 'node1/uplink.pcap').filter((f) => f.readUInt16BE(12) === 0x0800);
    assert.ok(up.length > 1000);
    assert.deepEqual([...new Set(up.map((f) => ipAt(f, 26)))], [QG.ip]);
    // The summary says where every record went.
    const summary = results[0]!.stdout;
    assert.match(summary, new RegExp(`Capture records: +${records}\\n`));
    assert.match(summary, new RegExp(`Mapped packets: +${m.mapped}\\n`));
    assert.match(summary, /Invariant: +ok/);
    // Deterministic: the same host table and the same outputs twice.
    assert.equal(
      readFileSync(path.join(outs[1]!, 'map.json'), 'utf8'),
      readFileSync(path.join(out, 'map.json'), 'utf8'),
    );
    assert.deepEqual(
      readFileSync(path.join(outs[1]!, 'node1', 'uplink.pcap')),
      readFileSync(path.join(out, 'node1', 'uplink.pcap')),
    );
  });

  it('takes conversations along the four DVR paths, with the right MACs, IPs and checksums', () => {
    // A LAN capture: four private hosts (.1 .. .4, in this order of appearance, so test01 ..
    // test04 by round robin) and two public ones.
    const lan = (n: number) => `00:00:5e:00:53:0${n}`;
    const router = '00:00:5e:00:53:fe';
    const H = (n: number) => `192.168.10.${n}`;
    const udp = (
      l2: { src: string; dst: string },
      src: string,
      dst: string,
      sport: number,
      dport: number,
    ) => udpFrame(l2, { src, dst }, { sport, dport, payload: Buffer.from('dvrlab map test') });
    const v6 = { src: '2001:db8::1', dst: '2001:db8::2' };
    const list: Buffer[] = [
      // 5.1: test01 -> test02, one network, across nodes (the first frame VLAN-tagged).
      eth(
        { dst: 'ff:ff:ff:ff:ff:ff', src: lan(1), type: ETH_ARP },
        arp({ op: 1, sha: lan(1), spa: H(1), tha: '00:00:00:00:00:00', tpa: H(2) }),
      ),
      udpFrame(
        { src: lan(1), dst: lan(2), vlans: [{ vid: 100 }] },
        { src: H(1), dst: H(2) },
        { sport: 40001, dport: 7, payload: Buffer.from('dvrlab map test') },
      ),
      udp({ src: lan(2), dst: lan(1) }, H(2), H(1), 7, 40001),
      // 5.2: test03 (private2) -> test01 (private), routed, across nodes, and back.
      udp({ src: lan(3), dst: lan(1) }, H(3), H(1), 40002, 7),
      udp({ src: lan(1), dst: lan(3) }, H(1), H(3), 7, 40002),
      // 5.3: test04 (no floating IP) -> 8.8.8.8, SNAT through node1, and the answer.
      udp({ src: lan(4), dst: router }, H(4), '8.8.8.8', 40003, 53),
      udp({ src: router, dst: lan(4) }, '8.8.8.8', H(4), 53, 40003),
      // 5.4: 1.1.1.1 -> test02's floating IP, and test02's answer.
      udp({ src: router, dst: lan(2) }, '1.1.1.1', H(2), 5000, 8080),
      udp({ src: lan(2), dst: router }, H(2), '1.1.1.1', 8080, 5000),
      // Not for the cloud: two outside hosts, and public IPv6 (no IPv6 outside).
      udp({ src: router, dst: router }, '9.9.9.9', '1.0.0.1', 1, 2),
      eth(
        { dst: router, src: lan(1), type: ETH_IPV6 },
        ipv6(
          { ...v6, nextHeader: IPPROTO_UDP },
          udp6(v6, { sport: 1, dport: 2, payload: Buffer.alloc(4) }),
        ),
      ),
    ];
    const dir = tempDir();
    const input = path.join(dir, 'lan.pcap');
    writePcap(
      input,
      list.map((data, i) => ({ tsUsec: 1_700_000_000_000_000n + BigInt(i) * 1000n, data })),
    );
    const out = path.join(dir, 'out');
    const r = run(['replay', 'devstack-dvr', '--map', '--in', input, '--out', out, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const stats = JSON.parse(r.stdout) as Stats;
    assert.deepEqual(
      { records: stats.map.records, mapped: stats.map.mapped, skipped: stats.map.skipped },
      { records: 11, mapped: 9, skipped: { outside_only: 1, no_ipv6_outside: 1 } },
    );
    assert.equal(stats.delivered, 9, `dropped: ${JSON.stringify(stats.dropped)}`);
    // The capture's checksums were right: the incremental updates keep them right.
    assert.equal(stats.map.checksums_fixed, 0);
    const hosts = JSON.parse(readFileSync(path.join(out, 'map.json'), 'utf8')) as MapHost[];
    assert.deepEqual(
      hosts.slice(0, 6).map((h) => [h.host, h.kind, h.name]),
      [
        [H(1), 'vm', 'test01'],
        [H(2), 'vm', 'test02'],
        [H(3), 'vm', 'test03'],
        [H(4), 'vm', 'test04'],
        ['8.8.8.8', 'outside', 'outside'],
        ['1.1.1.1', 'outside', 'outside'],
      ],
    );

    const check = (f: Buffer, want: Partial<ReturnType<typeof udpOf>>, what: string) => {
      const got = udpOf(f);
      for (const [k, v] of Object.entries(want)) {
        assert.equal(got[k as keyof typeof got], v, `${what}: ${k}`);
      }
      assert.ok(checksumsValid(f), `${what}: checksums`);
    };
    // 5.1: on test02's port as test01 sent it, untagged.
    check(
      udpFrameIn(out, 'node2/test02.pcap', 40001, 7),
      { type: 0x0800, dlSrc: T1.mac, dlDst: T2.mac, src: T1.ip, dst: T2.ip, ttl: 64 },
      '5.1 test01 -> test02',
    );
    check(
      udpFrameIn(out, 'node1/test01.pcap', 7, 40001),
      { dlSrc: T2.mac, dlDst: T1.mac, src: T2.ip, dst: T1.ip },
      '5.1 back',
    );
    // 5.2: routed by node2's qrouter; node1's br-int gives it a gateway MAC of test01's
    // network in place of node2's DVR MAC: GW6, since test01 is dual-stack and bound after
    // the qr- ports (reference §6.11).
    check(
      udpFrameIn(out, 'node1/test01.pcap', 40002, 7),
      { dlSrc: GW6, dlDst: T1.mac, src: T3.ip, dst: T1.ip, ttl: 63 },
      '5.2 test03 -> test01',
    );
    check(
      udpFrameIn(out, 'node2/test03.pcap', 7, 40002),
      { dlSrc: GW2, dlDst: T3.mac, src: T1.ip, dst: T3.ip, ttl: 63 },
      '5.2 back',
    );
    // 5.3: out of node1's uplink SNAT'ed, the source port kept; the answer reaches test04.
    check(
      udpFrameIn(out, 'node1/uplink.pcap', 40003, 53),
      { dlSrc: QG.mac, dlDst: EXT, src: QG.ip, dst: '8.8.8.8' },
      '5.3 test04 -> 8.8.8.8',
    );
    check(
      udpFrameIn(out, 'node3/test04.pcap', 53, 40003),
      { dlDst: T4.mac, src: '8.8.8.8', dst: T4.ip },
      '5.3 answer',
    );
    // 5.4: in through the floating IP on node2, out from it.
    check(
      udpFrameIn(out, 'node2/test02.pcap', 5000, 8080),
      { dlSrc: GW1, dlDst: T2.mac, src: '1.1.1.1', dst: T2.ip, ttl: 62 },
      '5.4 1.1.1.1 -> floating IP',
    );
    check(
      udpFrameIn(out, 'node2/uplink.pcap', 8080, 5000),
      { dlSrc: FG, dlDst: EXT, src: FIP, dst: '1.1.1.1' },
      '5.4 test02 -> 1.1.1.1',
    );
  });

  it('refuses a scenario that is not a topology, in one line', () => {
    const example = path.join(sharedDir(), 'tools', 'ovs-oracle-examples', 'l2-rewrite');
    const r = run([
      'replay',
      path.join(example, 'scenario.json'),
      '--map',
      '--in',
      path.join(example, 'input.pcap'),
      '--out',
      path.join(tempDir(), 'out'),
    ]);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0]!,
      /^dvrlab: --map: .*scenario\.json is a raw scenario; --map needs a Neutron topology/,
    );
  });
});
