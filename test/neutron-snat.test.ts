/**
 * §5.3 of the reference on the built-in seed: test05 (node3, no floating IP) reaches 8.8.8.8
 * through node1's central SNAT. The external gateway (172.24.4.1, an input on node1's uplink)
 * first resolves the router gateway 172.24.4.3, which the snat namespace answers from the qg-
 * port; test05's UDP query then crosses to node1 over VXLAN with node3's DVR MAC, is routed and
 * SNATed to 172.24.4.3 in the snat namespace and leaves node1's uplink. The answer is de-NATed
 * to 10.0.0.4 in the snat namespace, which does not know test05's MAC: it queues the answer and
 * ARPs from its sg- port; node1's br-tun ARP responder answers, and the answer crosses to node3
 * over VXLAN with the sg- port's MAC.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT, lazyReplay } from './helpers.js';
import { ETH_ARP, arp, eth, udpFrame } from './oracle/packets.js';

const ADDON = existsSync(path.join(ROOT, 'native', 'index.js'));

const T5 = 'fa:16:3e:96:e2:a4'; // test05, 10.0.0.4, on node3
const GW1 = 'fa:16:3e:9c:cf:de'; // qr-aae8ab78-22, 10.0.0.1
const SG1 = 'fa:16:3e:47:34:80'; // sg-adafc8f8-1e, 10.0.0.3, on node1
const QG = 'fa:16:3e:af:c7:ce'; // qg-242f9c7b-c1, 172.24.4.3, on node1
const D3 = 'fa:16:3f:59:35:b1'; // node3's DVR MAC
const EXT = '02:24:04:00:00:01'; // the external gateway 172.24.4.1, outside the cloud
const hex = (m: string) => m.replace(/:/g, '');

describe(
  'replay of the SNAT path without a floating IP (reference §5.3)',
  { skip: !ADDON && 'the addon is not built' },
  () => {
    const t0 = 1_700_000_000_000_000n;
    const who = eth(
      { dst: 'ff:ff:ff:ff:ff:ff', src: EXT, type: ETH_ARP },
      arp({ op: 1, sha: EXT, spa: '172.24.4.1', tha: '00:00:00:00:00:00', tpa: '172.24.4.3' }),
    );
    const arpGw = eth(
      { dst: 'ff:ff:ff:ff:ff:ff', src: T5, type: ETH_ARP },
      arp({ op: 1, sha: T5, spa: '10.0.0.4', tha: '00:00:00:00:00:00', tpa: '10.0.0.1' }),
    );
    const query = udpFrame(
      { src: T5, dst: GW1 },
      { src: '10.0.0.4', dst: '8.8.8.8', id: 1, ttl: 64 },
      { sport: 40000, dport: 53, payload: Buffer.from('query') },
    );
    const answer = udpFrame(
      { src: EXT, dst: QG },
      { src: '8.8.8.8', dst: '172.24.4.3', id: 2, ttl: 64 },
      { sport: 53, dport: 40000, payload: Buffer.from('answer') },
    );
    const replay = lazyReplay('devstack-dvr', {
      'node1/uplink': [
        { tsUsec: t0, data: who },
        { tsUsec: t0 + 3000n, data: answer },
      ],
      test05: [
        { tsUsec: t0 + 1000n, data: arpGw },
        { tsUsec: t0 + 2000n, data: query },
      ],
    });
    const frames = (p: string) => replay().frames(p);
    const ipv4 = (fs: Buffer[]) => fs.filter((f) => f.readUInt16BE(12) === 0x0800);

    it("the snat namespace answers the gateway's ARP for 172.24.4.3 from the qg- port", () => {
      const r = replay();
      assert.equal(r.status, 0, r.stderr);
      const reply = frames('node1/uplink.pcap').find((f) => f.readUInt16BE(12) === ETH_ARP);
      assert.ok(reply, 'an ARP reply leaves node1 on its uplink');
      assert.equal(reply.subarray(0, 6).toString('hex'), hex(EXT));
      assert.equal(reply.subarray(6, 12).toString('hex'), hex(QG));
      assert.equal(reply.readUInt16BE(20), 2);
      assert.equal(reply.subarray(22, 28).toString('hex'), hex(QG), '172.24.4.3 is-at qg-');
    });

    it("test05's ARP for its gateway is answered on node3 by the qr- port", () => {
      replay();
      const reply = frames('node3/test05.pcap').find((f) => f.readUInt16BE(12) === ETH_ARP);
      assert.ok(reply, 'test05 gets an ARP reply');
      assert.equal(reply.readUInt16BE(20), 2);
      assert.equal(reply.subarray(22, 28).toString('hex'), hex(GW1), '10.0.0.1 is-at GW1');
      assert.equal(reply.subarray(0, 6).toString('hex'), hex(T5));
    });

    it('the query crosses to node1 over VXLAN 66 with the DVR MAC of node3, TTL 63', () => {
      replay();
      const vx = frames('node3/underlay.pcap').filter((f) => f.readUInt16BE(36) === 4789);
      const toN1 = vx.filter(
        (f) =>
          f.subarray(30, 34).toString('hex') === 'c0a8010b' &&
          f.subarray(50, 56).toString('hex') === hex(SG1),
      );
      assert.equal(toN1.length, 1, 'one copy to the SNAT node');
      const f = toN1[0]!;
      assert.equal(f.subarray(0, 12).toString('hex'), '080027a6c602' + '080027aad428');
      assert.equal(f.subarray(26, 30).toString('hex'), 'c0a8010d', 'from 192.168.1.13');
      assert.equal(f.readUIntBE(46, 3), 66, 'VNI 66');
      assert.equal(f.subarray(56, 62).toString('hex'), hex(D3), 'the DVR MAC of node3');
      assert.equal(f[72], 63, 'TTL decremented by the qrouter on node3');
      assert.equal(f.subarray(76, 84).toString('hex'), '0a00000408080808', '10.0.0.4 -> 8.8.8.8');
    });

    it('the query leaves node1 SNATed to 172.24.4.3 from the qg- port, TTL 62', () => {
      replay();
      const q = ipv4(frames('node1/uplink.pcap')).find((f) => f[23] === 17);
      assert.ok(q, 'the UDP query leaves on the uplink');
      assert.equal(
        q.subarray(0, 6).toString('hex'),
        hex(EXT),
        'to the gateway, learned from its ARP',
      );
      assert.equal(q.subarray(6, 12).toString('hex'), hex(QG));
      assert.equal(q.readUInt16BE(12), 0x0800, 'untagged');
      assert.equal(q[22], 62, 'decremented by node3 qrouter and node1 snat namespace');
      assert.equal(
        q.subarray(26, 34).toString('hex'),
        'ac18040308080808',
        '172.24.4.3 -> 8.8.8.8',
      );
      assert.equal(q.readUInt16BE(34), 40000, 'no collision: the source port is kept');
    });

    it('the snat namespace ARPs for 10.0.0.4 from its sg- port; br-tun answers on node1', () => {
      replay();
      const reqs = frames('node1/test01.pcap').filter(
        (f) => f.readUInt16BE(12) === ETH_ARP && f.readUInt16BE(20) === 1,
      );
      assert.equal(reqs.length, 1, 'one request, flooded to the local ports of the network');
      const r = reqs[0]!;
      assert.equal(r.subarray(0, 6).toString('hex'), 'ffffffffffff');
      assert.equal(r.subarray(6, 12).toString('hex'), hex(SG1));
      assert.equal(r.subarray(22, 28).toString('hex'), hex(SG1), 'sha: the sg- port');
      assert.equal(r.subarray(28, 32).toString('hex'), '0a000003', 'spa: 10.0.0.3, on the link');
      assert.equal(r.subarray(38, 42).toString('hex'), '0a000004', 'tpa: 10.0.0.4');
      // The responder answers locally: nothing is flooded over the tunnels for it.
      const arpOverVxlan = frames('node1/underlay.pcap').filter(
        (f) => f.length >= 64 && f.readUInt16BE(62) === ETH_ARP,
      );
      assert.deepEqual(arpOverVxlan, []);
    });

    it('the answer crosses back to node3 over VXLAN 66 from the sg- port, DNATed to 10.0.0.4', () => {
      replay();
      const vx = frames('node1/underlay.pcap').filter(
        (f) => f.readUInt16BE(36) === 4789 && f.subarray(30, 34).toString('hex') === 'c0a8010d',
      );
      assert.equal(vx.length, 1, 'one VXLAN frame to node3');
      const f = vx[0]!;
      assert.equal(f.subarray(26, 30).toString('hex'), 'c0a8010b', 'from 192.168.1.11');
      assert.equal(f.readUIntBE(46, 3), 66, 'VNI 66');
      assert.equal(f.subarray(50, 56).toString('hex'), hex(T5), 'inner dst test05');
      assert.equal(f.subarray(56, 62).toString('hex'), hex(SG1), 'inner src the sg- port');
      assert.equal(f.subarray(76, 84).toString('hex'), '080808080a000004', '8.8.8.8 -> 10.0.0.4');

      const got = ipv4(frames('node3/test05.pcap')).filter(
        (x) => x[23] === 17 && x.subarray(26, 30).toString('hex') === '08080808',
      );
      assert.equal(got.length, 1, 'test05 receives the answer');
      const a = got[0]!;
      assert.equal(a.subarray(0, 6).toString('hex'), hex(T5));
      assert.equal(a.subarray(6, 12).toString('hex'), hex(SG1));
      assert.equal(a[22], 63, 'decremented once, by the snat namespace');
      assert.equal(a.subarray(26, 34).toString('hex'), '080808080a000004');
      assert.equal(a.readUInt16BE(34), 53);
      assert.equal(a.readUInt16BE(36), 40000, 'the original port');
      assert.equal(a.subarray(42, 48).toString(), 'answer');
    });

    it('every input is delivered; the ARP request is counted as generated', () => {
      const r = replay();
      const stats = JSON.parse(r.stdout) as {
        packets_in: number;
        delivered: number;
        dropped: Record<string, number>;
        generated: number;
        queued: number;
      };
      assert.equal(stats.packets_in, 4);
      assert.equal(stats.delivered, 4);
      assert.deepEqual(stats.dropped, {});
      assert.equal(stats.queued, 0);
      assert.equal(
        stats.generated,
        3,
        "the request, flooded to test01, the DHCP port and br-int's own port",
      );
    });
  },
);
