/**
 * `dvrlab demo`: the four paths of the reference (§5) on the built-in seed, as a user sees
 * them. The facts checked are those the reference names: the DVR MAC on the wire and the
 * VNI (§5.2), the SNAT to the router gateway (§5.3), the proxy ARP and the DNAT of the
 * floating IP (§5.4), and every input packet accounted for.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT, tempDir } from './helpers.js';
import { readPcap } from './oracle/packets.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const ADDON = existsSync(path.join(ROOT, 'native', 'index.js'));

interface Change {
  kind: string;
  [k: string]: unknown;
}
interface Hop {
  node: string;
  where: string;
  changes: Change[];
  notes: string[];
}
interface Packet {
  packet: number;
  label: string;
  reached: boolean;
  drop: string | null;
  hops: Hop[];
  left?: { port: string; file?: string };
}
interface Report {
  paths: { id: string; title: string; packets: Packet[] }[];
  stats: { packets_in: number; delivered: number; dropped: Record<string, number> };
}

describe('dvrlab demo', { skip: !ADDON && 'the addon is not built' }, () => {
  const out = path.join(tempDir(), 'demo');
  let ran: { status: number | null; stdout: string; stderr: string } | undefined;
  const demo = () =>
    (ran ??= spawnSync(process.execPath, [CLI, 'demo', '--out', out, '--json'], {
      cwd: ROOT,
      encoding: 'utf8',
    }));
  const report = (): Report => JSON.parse(demo().stdout) as Report;
  const pathOf = (id: string) => report().paths.find((p) => p.id === id)!;
  const changesOf = (p: Packet): (Change & { hop: Hop })[] =>
    p.hops.flatMap((h) => h.changes.map((c) => ({ ...c, hop: h })));

  it('exits 0 and reports the four paths', () => {
    const r = demo();
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(
      report().paths.map((p) => p.id),
      ['5.1', '5.2', '5.3', '5.4'],
    );
    for (const p of report().paths) assert.ok(p.packets.length >= 4, `§${p.id} has packets`);
  });

  it('§5.1: the ARP responder answers in br-tun, and the ping crosses as VNI 66', () => {
    const [arpReq, ping] = pathOf('5.1').packets;
    const answer = changesOf(arpReq!).find((c) => c.kind === 'arp_reply')!;
    assert.ok(answer, 'an ARP reply');
    assert.equal(answer.hop.where, 'br-tun');
    assert.equal(answer.ip, '10.0.0.4');
    assert.ok(ping!.reached);
    const encap = changesOf(ping!).find((c) => c.kind === 'vxlan_encap')!;
    assert.equal(encap.vni, 66);
    assert.equal(encap.outer_src, '192.168.1.12');
    assert.equal(encap.outer_dst, '192.168.1.13');
  });

  it('§5.2: routed on node2, it crosses as VNI 5 with the DVR MAC as source', () => {
    const ping = pathOf('5.2').packets.find((p) => p.label.startsWith('ICMP echo request'))!;
    assert.ok(ping.reached, 'reaches test04');
    assert.equal(ping.left?.port, 'node3/br-int/qvo62806dde-b9');
    const all = changesOf(ping);
    const ttl = all.find((c) => c.kind === 'ttl')!;
    assert.equal(ttl.hop.node, 'node2');
    assert.match(ttl.hop.where, /^qrouter-/);
    assert.deepEqual([ttl.from, ttl.to], [64, 63]);
    const encap = all.find((c) => c.kind === 'vxlan_encap')!;
    assert.equal(encap.vni, 5);
    assert.equal(encap.inner_dl_src, 'fa:16:3f:73:c3:04', "node2's DVR MAC on the wire");
    const decap = all.find((c) => c.kind === 'vxlan_decap')!;
    assert.equal(decap.hop.node, 'node3');
    // node3's br-int puts the gateway MAC back.
    const restore = all.find((c) => c.kind === 'dl_src' && c.hop.node === 'node3')!;
    assert.deepEqual([restore.from, restore.to], ['fa:16:3f:73:c3:04', 'fa:16:3e:5c:3d:f9']);
    // The wire really carried it so.
    const wire = readPcap(path.join(out, 'node2', 'underlay.pcap')).map((r) => r.data);
    assert.ok(
      wire.some(
        (f) =>
          f.readUInt32BE(46) >> 8 === 5 && f.subarray(56, 62).toString('hex') === 'fa163f73c304',
      ),
    );
  });

  it("§5.3: SNAT to the router gateway 172.24.4.3 in node1's snat namespace", () => {
    const p = pathOf('5.3');
    const query = p.packets.find((k) => k.label.startsWith('UDP 10.0.0.4'))!;
    assert.ok(query.reached, 'the query leaves on node1/uplink');
    const snat = changesOf(query).find((c) => c.kind === 'snat')!;
    assert.equal(snat.hop.node, 'node1');
    assert.match(snat.hop.where, /^snat-/);
    assert.equal(snat.to, '172.24.4.3:40053');
    const up = readPcap(path.join(out, 'node1', 'uplink.pcap')).map((r) => r.data);
    assert.ok(up.some((f) => f[23] === 17 && f.subarray(26, 30).toString('hex') === 'ac180403'));
    // The answer is de-NATed, waits while the snat namespace ARPs for test05 (node1's br-tun
    // answers), and crosses to node3 from the sg- port.
    const answer = p.packets.find((k) => k.label.includes('(the answer)'))!;
    const denat = changesOf(answer).find((c) => c.kind === 'dnat')!;
    assert.equal(denat.to, '10.0.0.4:40053');
    assert.ok(answer.reached, 'the answer reaches test05');
    const ns = answer.hops.find((h) => /^snat-/.test(h.where))!;
    assert.ok(ns.notes.some((n) => /^no neighbour entry for 10\.0\.0\.4/.test(n)));
    assert.ok(ns.notes.includes('the ARP request was answered: neighbour learned'));
    const encap = changesOf(answer).find((c) => c.kind === 'vxlan_encap')!;
    assert.deepEqual(
      [encap.outer_src, encap.outer_dst, encap.inner_dl_src],
      ['192.168.1.11', '192.168.1.13', 'fa:16:3e:47:34:80'],
    );
  });

  it('§5.4: proxy ARP for the FIP, DNAT 172.24.4.12 -> 10.0.0.8 in, SNAT to it out', () => {
    const [who, ping, pong, query] = pathOf('5.4').packets;
    const proxy = changesOf(who!).find((c) => c.kind === 'arp_reply')!;
    assert.match(proxy.hop.where, /^fip-/);
    assert.equal(proxy.ip, '172.24.4.12');
    assert.ok(ping!.reached);
    const dnat = changesOf(ping!).find((c) => c.kind === 'dnat')!;
    assert.deepEqual([dnat.from, dnat.to], ['172.24.4.12', '10.0.0.8']);
    assert.match(dnat.hop.where, /^qrouter-/);
    assert.ok(pong!.reached);
    assert.equal(changesOf(pong!).find((c) => c.kind === 'snat')!.to, '172.24.4.12');
    assert.equal(changesOf(query!).find((c) => c.kind === 'snat')!.to, '172.24.4.12:33333');
    for (const k of [ping, pong, query]) {
      assert.ok(!changesOf(k!).some((c) => c.kind === 'vxlan_encap'), 'no tunnel on this path');
    }
  });

  it('accounts for every input packet and writes the replay layout', () => {
    const { stats, paths } = report();
    const n = paths.reduce((s, p) => s + p.packets.length, 0);
    assert.equal(stats.packets_in, n);
    const dropped = Object.values(stats.dropped).reduce((s, x) => s + x, 0);
    assert.equal(stats.delivered + dropped, n);
    assert.deepEqual(stats.dropped, {}, 'every packet of the four paths is delivered');
    for (const p of paths) {
      for (const k of p.packets) {
        assert.ok(k.reached || k.drop || k.left, `#${k.packet} is accounted for`);
      }
    }
    for (const f of [
      'node2/test02.pcap',
      'node3/test04.pcap',
      'node2/underlay.pcap',
      'node2/uplink.pcap',
      'node1/uplink.pcap',
      'stats.json',
    ]) {
      assert.ok(existsSync(path.join(out, f)), f);
    }
  });

  it('prints the paths hop by hop without --json', () => {
    const r = spawnSync(process.execPath, [CLI, 'demo', '--out', path.join(out, 'text')], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /^§5\.2 test02 10\.0\.0\.8 -> test04 10\.1\.0\.10 \(different subnets, across nodes\)$/m,
    );
    assert.match(r.stdout, /node2 br-tun .*VXLAN encap VNI 5 192\.168\.1\.12 -> 192\.168\.1\.13/);
    assert.match(r.stdout, /NAT dst 172\.24\.4\.12 -> 10\.0\.0\.8/);
    assert.match(r.stdout, /^Statistics for dvrlab replay:$/m);
    assert.match(r.stdout, /Invariant: +ok/);
  });
});
