/**
 * §5.2 of the reference on the built-in seed: test02 (node2, 10.0.0.8) pings test04 (node3,
 * 10.1.0.10), a different subnet on another node, through router1's distributed qrouter
 * namespaces — and test04 answers, routed by node3's own qrouter. Every header field the
 * reference names is checked on the wire and at the VMs.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT, lazyReplay } from './helpers.js';
import { ETH_ARP, arp, eth, icmpFrame } from './oracle/packets.js';

const ADDON = existsSync(path.join(ROOT, 'native', 'index.js'));

const T2 = 'fa:16:3e:76:47:75'; // test02
const T4 = 'fa:16:3e:23:c5:28'; // test04
const GW1 = 'fa:16:3e:9c:cf:de'; // qr-aae8ab78-22, 10.0.0.1
const GW2 = 'fa:16:3e:5c:3d:f9'; // qr-2909fe1f-46, 10.1.0.1
const D2 = 'fa:16:3f:73:c3:04'; // node2's DVR MAC
const D3 = 'fa:16:3f:59:35:b1'; // node3's DVR MAC
const hex = (m: string) => m.replace(/:/g, '');

describe(
  'replay of the routed cross-node path (reference §5.2)',
  { skip: !ADDON && 'the addon is not built' },
  () => {
    const arpGw = eth(
      { dst: 'ff:ff:ff:ff:ff:ff', src: T2, type: ETH_ARP },
      arp({ op: 1, sha: T2, spa: '10.0.0.8', tha: '00:00:00:00:00:00', tpa: '10.0.0.1' }),
    );
    const ping = icmpFrame(
      { src: T2, dst: GW1 },
      { src: '10.0.0.8', dst: '10.1.0.10', id: 0x1111, ttl: 64 },
      { type: 8, rest: (9 << 16) | 1, payload: Buffer.from('dvrlab routed path') },
    );
    const pong = icmpFrame(
      { src: T4, dst: GW2 },
      { src: '10.1.0.10', dst: '10.0.0.8', id: 0x2222, ttl: 64 },
      { type: 0, rest: (9 << 16) | 1, payload: Buffer.from('dvrlab routed path') },
    );
    const t0 = 1_700_000_000_000_000n;
    const replay = lazyReplay('devstack-dvr', {
      test02: [
        { tsUsec: t0, data: arpGw },
        { tsUsec: t0 + 1000n, data: ping },
      ],
      test04: [{ tsUsec: t0 + 2000n, data: pong }],
    });
    const frames = (p: string) => replay().frames(p);

    it("step 1: test02's ARP for its gateway is answered by node2's own qr- port", () => {
      const r = replay();
      assert.equal(r.status, 0, r.stderr);
      const reply = frames('node2/test02.pcap').find((f) => f.readUInt16BE(12) === ETH_ARP);
      assert.ok(reply, 'test02 got an ARP reply');
      assert.equal(reply.subarray(0, 6).toString('hex'), hex(T2));
      assert.equal(reply.subarray(6, 12).toString('hex'), hex(GW1), 'from the qr- MAC');
      assert.equal(reply.readUInt16BE(20), 2);
      assert.equal(reply.subarray(22, 28).toString('hex'), hex(GW1), 'sha = GW1');
      assert.equal(reply.subarray(28, 32).toString('hex'), '0a000001', 'spa = 10.0.0.1');
      // The copy that reaches br-tun dies at table 1: no ARP goes on the wire.
      for (const f of frames('node2/underlay.pcap')) assert.notEqual(f.readUInt16BE(62), ETH_ARP);
    });

    it('steps 2-6: routed in node2, it leaves as VNI 5 from D2 to T4 with TTL 63', () => {
      replay();
      const wire = frames('node2/underlay.pcap').filter((f) => f.readUInt32BE(46) >> 8 === 5);
      assert.equal(wire.length, 1);
      const o = wire[0]!;
      assert.equal(o.subarray(0, 6).toString('hex'), '080027aad428', 'outer dst = node3');
      assert.equal(o.subarray(6, 12).toString('hex'), '0800278ba713', 'outer src = node2');
      assert.equal(o.subarray(26, 34).toString('hex'), 'c0a8010cc0a8010d', '192.168.1.12 -> .13');
      assert.equal(o.readUInt16BE(36), 4789);
      const inner = o.subarray(50);
      assert.equal(inner.subarray(0, 6).toString('hex'), hex(T4), 'inner dst = T4');
      assert.equal(inner.subarray(6, 12).toString('hex'), hex(D2), 'inner src = node2 DVR MAC');
      assert.equal(inner.readUInt16BE(12), 0x0800, 'untagged');
      assert.equal(inner[22], 63, 'TTL decremented once, by node2 qrouter');
      assert.equal(
        inner.subarray(26, 34).toString('hex'),
        '0a0000080a01000a',
        '10.0.0.8 -> 10.1.0.10',
      );
    });

    it('steps 7-8: node3 delivers it to test04 as if from its own router: GW2 -> T4', () => {
      replay();
      const got = frames('node3/test04.pcap');
      assert.equal(got.length, 1);
      const f = got[0]!;
      assert.equal(f.subarray(0, 6).toString('hex'), hex(T4));
      assert.equal(f.subarray(6, 12).toString('hex'), hex(GW2), 'src restored to GW2');
      assert.equal(f.readUInt16BE(12), 0x0800, 'untagged');
      assert.equal(f[22], 63);
      // The payload is the ping's, with only the TTL (and so the IP checksum) changed.
      assert.deepEqual(f.subarray(34), ping.subarray(34));
    });

    it("the reply is routed by node3's qrouter and arrives at test02 from GW1, TTL 63, VNI 66", () => {
      replay();
      const wire = frames('node3/underlay.pcap');
      const o = wire.find((w) => w.readUInt32BE(46) >> 8 === 66)!;
      assert.ok(o, 'the reply crosses as VNI 66');
      const inner = o.subarray(50);
      assert.equal(inner.subarray(0, 6).toString('hex'), hex(T2));
      assert.equal(inner.subarray(6, 12).toString('hex'), hex(D3), 'inner src = node3 DVR MAC');
      assert.equal(inner[22], 63);
      const back = frames('node2/test02.pcap').filter((f) => f.readUInt16BE(12) === 0x0800);
      assert.equal(back.length, 1);
      assert.equal(back[0]!.subarray(6, 12).toString('hex'), hex(GW1), 'src = GW1');
      assert.equal(back[0]![22], 63);
      const stats = JSON.parse(replay().stdout);
      assert.equal(stats.packets_in, 3);
      assert.equal(stats.delivered, 3);
    });
  },
);
