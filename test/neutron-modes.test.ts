/**
 * The other router modes, replayed: a combined compute/network node (test01 on node1 of the
 * seed, dvr_snat, where its router's SNAT also lives) and a legacy (centralised) router whose
 * qrouter namespace on the network node routes and NATs for a VM on a compute node.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT, lazyReplay, tempDir } from './helpers.js';
import { ETH_ARP, arp, eth, udpFrame } from './oracle/packets.js';

const ADDON = existsSync(path.join(ROOT, 'native', 'index.js'));
const hex = (m: string) => m.replace(/:/g, '');
const EXT = '02:24:04:00:00:01'; // an external gateway outside the cloud
const t0 = 1_700_000_000_000_000n;

/** Replays `inputs` through `scenario` and checks that the run succeeded. */
function replay(scenario: string, inputs: Parameters<typeof lazyReplay>[1]) {
  const run = lazyReplay(scenario, inputs)();
  assert.equal(run.status, 0, run.stderr);
  return { ...run, stats: JSON.parse(run.stdout) as { packets_in: number; delivered: number } };
}

const gatewayArp = (tpa: string, spa: string) =>
  eth(
    { dst: 'ff:ff:ff:ff:ff:ff', src: EXT, type: ETH_ARP },
    arp({ op: 1, sha: EXT, spa, tha: '00:00:00:00:00:00', tpa }),
  );

describe(
  'a combined compute and network node (dvr_snat with VMs)',
  { skip: !ADDON && 'the addon is not built' },
  () => {
    it("test01 on node1 reaches 8.8.8.8 through node1's own snat namespace", () => {
      const T1 = 'fa:16:3e:5a:6e:54';
      const GW1 = 'fa:16:3e:9c:cf:de';
      const QG = 'fa:16:3e:af:c7:ce';
      const query = udpFrame(
        { src: T1, dst: GW1 },
        { src: '10.0.0.7', dst: '8.8.8.8', id: 1, ttl: 64 },
        { sport: 41000, dport: 53, payload: Buffer.from('query') },
      );
      const run = replay('devstack-dvr', {
        'node1/uplink': [{ tsUsec: t0, data: gatewayArp('172.24.4.3', '172.24.4.1') }],
        test01: [{ tsUsec: t0 + 1000n, data: query }],
      });
      const up = run.frames('node1/uplink.pcap').filter((f) => f.readUInt16BE(12) === 0x0800);
      assert.equal(up.length, 1, 'the query leaves on node1 uplink');
      const q = up[0]!;
      assert.equal(q.subarray(0, 12).toString('hex'), hex(EXT) + hex(QG));
      // Routed twice on the same node: by the local qrouter to SG1, then by the snat namespace.
      assert.equal(q[22], 62);
      assert.equal(
        q.subarray(26, 34).toString('hex'),
        'ac18040308080808',
        '172.24.4.3 -> 8.8.8.8',
      );
      assert.equal(q.readUInt16BE(34), 41000);
      assert.equal(run.stats.packets_in, 2);
    });
  },
);

const LEGACY = `
nodes:
  - {name: net1, agent_mode: legacy, tunnel_ip: 10.9.0.1, uplink: {name: eth1, ofport: 1}}
  - {name: cmp1, agent_mode: legacy, tunnel_ip: 10.9.0.2}
networks:
  - {name: lan, vni: 8, subnets: [{name: lsn, cidr: 10.6.0.0/24, gateway_ip: 10.6.0.1}]}
  - {name: ext, external: true, subnets: [{name: ext-sn, cidr: 192.0.2.0/24, gateway_ip: 192.0.2.1}]}
routers:
  - name: old
    distributed: false
    snat_node: net1
    gateway: {network: ext, ip: 192.0.2.3, mac: "fa:16:3e:00:00:03"}
    interfaces: [{subnet: lsn, mac: "fa:16:3e:00:00:01"}]
vms:
  - {name: c, node: cmp1, network: lan, ip: 10.6.0.5, mac: "fa:16:3e:00:00:05"}
  - {name: d, node: cmp1, network: lan, ip: 10.6.0.6, mac: "fa:16:3e:00:00:06"}
floating_ips:
  - {ip: 192.0.2.51, vm: d}
`;

describe(
  'a legacy router on the network node',
  { skip: !ADDON && 'the addon is not built' },
  () => {
    const dir = tempDir();
    const topo = path.join(dir, 'legacy.yaml');
    writeFileSync(topo, LEGACY);
    const QR = 'fa:16:3e:00:00:01';
    const QG = 'fa:16:3e:00:00:03';
    const C = 'fa:16:3e:00:00:05';
    const D = 'fa:16:3e:00:00:06';
    let run: ReturnType<typeof replay> | undefined;
    const get = () =>
      (run ??= replay(topo, {
        'net1/uplink': [
          { tsUsec: t0, data: gatewayArp('192.0.2.3', '192.0.2.1') },
          {
            tsUsec: t0 + 3000n,
            data: udpFrame(
              { src: EXT, dst: QG },
              { src: '198.51.100.9', dst: '192.0.2.3', id: 3, ttl: 64 },
              { sport: 53, dport: 42000, payload: Buffer.from('answer') },
            ),
          },
        ],
        c: [
          {
            tsUsec: t0 + 1000n,
            data: udpFrame(
              { src: C, dst: QR },
              { src: '10.6.0.5', dst: '198.51.100.9', id: 1, ttl: 64 },
              { sport: 42000, dport: 53, payload: Buffer.from('query') },
            ),
          },
          {
            tsUsec: t0 + 4000n,
            data: udpFrame(
              { src: C, dst: QR },
              { src: '10.6.0.5', dst: '198.51.100.9', id: 4, ttl: 1 },
              { sport: 42001, dport: 33434, payload: Buffer.from('probe') },
            ),
          },
        ],
        d: [
          {
            tsUsec: t0 + 2000n,
            data: udpFrame(
              { src: D, dst: QR },
              { src: '10.6.0.6', dst: '198.51.100.9', id: 2, ttl: 64 },
              { sport: 43000, dport: 53, payload: Buffer.from('query') },
            ),
          },
        ],
      }));

    it('routed frames cross to the network node over VXLAN with the VM MAC, no DVR MAC', () => {
      const vx = get()
        .frames('cmp1/underlay.pcap')
        .filter(
          (f) =>
            f.readUInt16BE(36) === 4789 &&
            f.subarray(50, 56).toString('hex') === hex(QR) &&
            f.readUInt16BE(86) === 53,
        );
      assert.equal(vx.length, 2);
      for (const f of vx) {
        assert.equal(
          f.subarray(26, 34).toString('hex'),
          '0a0900020a090001',
          '10.9.0.2 -> 10.9.0.1',
        );
        assert.equal(f.readUIntBE(46, 3), 8, 'VNI 8');
        assert.ok([hex(C), hex(D)].includes(f.subarray(56, 62).toString('hex')));
        assert.equal(f[72], 64, 'not routed yet');
      }
    });

    it('the qrouter SNATs the VM without a floating IP to the gateway address', () => {
      const up = get()
        .frames('net1/uplink.pcap')
        .filter((f) => f.readUInt16BE(12) === 0x0800 && f.readUInt16BE(34) === 42000);
      assert.equal(up.length, 1);
      const q = up[0]!;
      assert.equal(q.subarray(0, 12).toString('hex'), hex(EXT) + hex(QG));
      assert.equal(q[22], 63, 'routed once, by the qrouter');
      assert.equal(
        q.subarray(26, 34).toString('hex'),
        'c0000203c6336409',
        '192.0.2.3 -> 198.51.100.9',
      );
    });

    it('the VM with a floating IP leaves as its floating IP', () => {
      const up = get()
        .frames('net1/uplink.pcap')
        .filter((f) => f.readUInt16BE(12) === 0x0800 && f.readUInt16BE(34) === 43000);
      assert.equal(up.length, 1);
      assert.equal(
        up[0]!.subarray(26, 34).toString('hex'),
        'c0000233c6336409',
        '192.0.2.51 -> 198.51.100.9',
      );
    });

    it('the answer is de-NATed, the qrouter ARPs for the VM, and it crosses back to cmp1', () => {
      const r = get();
      const reqs = r
        .frames('net1/underlay.pcap')
        .filter((f) => f.length >= 64 && f.readUInt16BE(62) === ETH_ARP);
      assert.deepEqual(reqs, [], "net1's br-tun ARP responder answers: no ARP over VXLAN");
      const got = r
        .frames('cmp1/c.pcap')
        .filter(
          (f) =>
            f.readUInt16BE(12) === 0x0800 &&
            f[23] === 17 &&
            f.subarray(26, 30).toString('hex') === 'c6336409',
        );
      assert.equal(got.length, 1, 'c receives the answer');
      const a = got[0]!;
      assert.equal(a.subarray(0, 12).toString('hex'), hex(C) + hex(QR));
      assert.equal(a[22], 63, 'routed once, by the qrouter');
      assert.equal(a.subarray(26, 34).toString('hex'), 'c63364090a060005', '-> 10.6.0.5');
      assert.equal(a.readUInt16BE(36), 42000);
    });

    it('a TTL of 1 is answered with ICMP time exceeded from the router port', () => {
      const r = get();
      const icmp = r
        .frames('cmp1/c.pcap')
        .filter((f) => f.readUInt16BE(12) === 0x0800 && f[23] === 1);
      assert.equal(icmp.length, 1, 'one ICMP error reaches c');
      const e = icmp[0]!;
      assert.equal(e.subarray(0, 12).toString('hex'), hex(C) + hex(QR));
      assert.equal(e[15], 0xc0, 'TOS: internetwork control');
      assert.equal(e[22], 64, 'a new packet of the qrouter');
      assert.equal(e.subarray(26, 34).toString('hex'), '0a0600010a060005', '10.6.0.1 -> 10.6.0.5');
      assert.equal(e[34], 11, 'time exceeded');
      assert.equal(e[35], 0, 'in transit');
      const quoted = e.subarray(42);
      assert.equal(quoted.length, 20 + 8 + 5, 'the whole offending packet');
      assert.equal(quoted[8], 1, 'quoted as it arrived, TTL 1');
      assert.equal(quoted.readUInt16BE(22), 33434);
      const stats = JSON.parse(r.stdout) as {
        delivered: number;
        dropped: Record<string, number>;
        generated: number;
      };
      assert.deepEqual(stats.dropped, { ttl_expired: 1 }, 'the probe itself is dropped');
      assert.equal(stats.delivered, 4);
      assert.ok(stats.generated >= 2, 'the ARP request and the ICMP error');
    });
  },
);

const ISOLATED = `
nodes:
  - {name: net1, agent_mode: legacy, tunnel_ip: 10.9.0.1}
  - {name: cmp1, agent_mode: legacy, tunnel_ip: 10.9.0.2}
networks:
  - {name: lan, vni: 8, subnets: [{name: lsn, cidr: 10.6.0.0/24, gateway_ip: 10.6.0.1}]}
routers:
  - name: inner
    distributed: false
    snat_node: net1
    interfaces: [{subnet: lsn, mac: "fa:16:3e:00:00:01"}]
vms:
  - {name: c, node: cmp1, network: lan, ip: 10.6.0.5, mac: "fa:16:3e:00:00:05"}
`;

describe(
  'a router without an external gateway',
  { skip: !ADDON && 'the addon is not built' },
  () => {
    it('answers a packet it has no route for with ICMP net unreachable, rate-limited', () => {
      const dir = tempDir();
      const topo = path.join(dir, 'isolated.yaml');
      writeFileSync(topo, ISOLATED);
      const QR = 'fa:16:3e:00:00:01';
      const C = 'fa:16:3e:00:00:05';
      // Eight packets within a millisecond: Linux answers the first six (its burst), then one
      // per second per peer.
      const probes = Array.from({ length: 8 }, (_, i) => ({
        tsUsec: t0 + BigInt(i * 100),
        data: udpFrame(
          { src: C, dst: QR },
          { src: '10.6.0.5', dst: '198.51.100.9', id: 10 + i, ttl: 64 },
          { sport: 42000 + i, dport: 53, payload: Buffer.from('query') },
        ),
      }));
      const run = replay(topo, { c: probes });
      const errors = run
        .frames('cmp1/c.pcap')
        .filter((f) => f.readUInt16BE(12) === 0x0800 && f[23] === 1);
      assert.equal(errors.length, 6, 'a burst of six errors');
      const e = errors[0]!;
      assert.equal(e.subarray(0, 12).toString('hex'), hex(C) + hex(QR));
      assert.equal(e.subarray(26, 34).toString('hex'), '0a0600010a060005', '10.6.0.1 -> 10.6.0.5');
      assert.deepEqual([e[34], e[35]], [3, 0], 'destination unreachable, network unreachable');
      assert.equal(e.subarray(42 + 16, 42 + 20).toString('hex'), 'c6336409', 'quotes the probe');
      const stats = run.stats as unknown as { dropped: Record<string, number>; generated: number };
      // The first probe is also flooded on cmp1 (the router MAC is not learned there yet), to
      // br-int's own port: emitted there, so it counts as delivered.
      assert.deepEqual(stats.dropped, { namespace_unreachable: 7 });
      assert.equal(run.stats.delivered, 1);
      assert.ok(stats.generated >= 6);
    });
  },
);
