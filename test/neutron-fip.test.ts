/**
 * §5.4 of the reference on the built-in seed: floating IP 172.24.4.12 of test02, all on node2.
 * The external gateway (172.24.4.1, an input on node2's uplink) asks for the FIP and the fip
 * namespace answers by proxy ARP with the fg- port's MAC; a ping from outside is DNATed by the
 * qrouter to 10.0.0.8; test02's reply is un-NATed and leaves from the fg- port, not VXLAN;
 * and a new connection from test02 is SNATed to the FIP.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT, lazyReplay } from './helpers.js';
import { ETH_ARP, arp, eth, icmpFrame, udpFrame } from './oracle/packets.js';

const ADDON = existsSync(path.join(ROOT, 'native', 'index.js'));

const T2 = 'fa:16:3e:76:47:75'; // test02, 10.0.0.8
const GW1 = 'fa:16:3e:9c:cf:de'; // qr-aae8ab78-22, 10.0.0.1
const FG = 'fa:16:3e:0f:6b:2e'; // fg-07ec92fd-de (chosen in the seed: see devstack-dvr.ts)
const DVR2 = 'fa:16:3f:73:c3:04'; // node2's DVR host MAC
const EXT = '02:24:04:00:00:01'; // the external gateway 172.24.4.1, outside the cloud
const hex = (m: string) => m.replace(/:/g, '');

describe(
  'replay of the floating IP path (reference §5.4)',
  { skip: !ADDON && 'the addon is not built' },
  () => {
    const t0 = 1_700_000_000_000_000n;
    const who = eth(
      { dst: 'ff:ff:ff:ff:ff:ff', src: EXT, type: ETH_ARP },
      arp({ op: 1, sha: EXT, spa: '172.24.4.1', tha: '00:00:00:00:00:00', tpa: '172.24.4.12' }),
    );
    const ping = icmpFrame(
      { src: EXT, dst: FG },
      { src: '8.8.8.8', dst: '172.24.4.12', id: 7, ttl: 64 },
      { type: 8, rest: (3 << 16) | 1, payload: Buffer.from('from outside') },
    );
    const pong = icmpFrame(
      { src: T2, dst: GW1 },
      { src: '10.0.0.8', dst: '8.8.8.8', id: 8, ttl: 64 },
      { type: 0, rest: (3 << 16) | 1, payload: Buffer.from('from outside') },
    );
    const dns = udpFrame(
      { src: T2, dst: GW1 },
      { src: '10.0.0.8', dst: '8.8.8.8', id: 9, ttl: 64 },
      { sport: 33333, dport: 53, payload: Buffer.from('query') },
    );
    const replay = lazyReplay('devstack-dvr', {
      'node2/uplink': [
        { tsUsec: t0, data: who },
        { tsUsec: t0 + 1000n, data: ping },
      ],
      test02: [
        { tsUsec: t0 + 2000n, data: pong },
        { tsUsec: t0 + 3000n, data: dns },
      ],
    });
    const frames = (p: string) => replay().frames(p);

    it('the fip namespace answers the ARP for the FIP by proxy, with the fg- MAC', () => {
      const r = replay();
      assert.equal(r.status, 0, r.stderr);
      const up = frames('node2/uplink.pcap');
      const reply = up.find((f) => f.readUInt16BE(12) === ETH_ARP);
      assert.ok(reply, 'an ARP reply leaves node2 on its uplink');
      assert.equal(reply.subarray(0, 6).toString('hex'), hex(EXT));
      assert.equal(reply.subarray(6, 12).toString('hex'), hex(FG));
      assert.equal(reply.readUInt16BE(20), 2);
      assert.equal(reply.subarray(22, 28).toString('hex'), hex(FG), '172.24.4.12 is-at fg-');
      assert.equal(reply.subarray(28, 32).toString('hex'), 'ac18040c');
    });

    it('a ping from outside is DNATed to test02, its TTL decremented twice', () => {
      replay();
      const got = frames('node2/test02.pcap').filter((f) => f.readUInt16BE(12) === 0x0800);
      assert.equal(got.length, 1);
      const f = got[0]!;
      assert.equal(f.subarray(0, 6).toString('hex'), hex(T2));
      assert.equal(f.subarray(6, 12).toString('hex'), hex(GW1), 'from the qr- port');
      assert.equal(f[22], 62, 'fip namespace and qrouter each decrement it');
      assert.equal(f.subarray(26, 34).toString('hex'), '080808080a000008', '8.8.8.8 -> 10.0.0.8');
      // br-int has not learned test02's MAC yet, so NORMAL also floods the routed frame into
      // br-tun, which sends it to the other nodes with node2's DVR MAC as the source (as
      // Neutron's DVR_PROCESS table does), never with the qr- MAC.
      const vx = frames('node2/underlay.pcap');
      assert.equal(vx.length, 2, 'flooded to node1 and node3');
      for (const u of vx) {
        assert.equal(u.readUInt16BE(36), 4789);
        assert.equal(u.subarray(50, 56).toString('hex'), hex(T2));
        assert.equal(u.subarray(56, 62).toString('hex'), hex(DVR2), 'DVR MAC, not qr-');
      }
    });

    it("test02's reply is un-NATed and leaves the fg- port untagged, not VXLAN", () => {
      replay();
      const up = frames('node2/uplink.pcap').filter((f) => f.readUInt16BE(12) === 0x0800);
      const pongOut = up.find((f) => f[34] === 0)!;
      assert.ok(pongOut, 'the echo reply leaves on the uplink');
      assert.equal(pongOut.subarray(0, 6).toString('hex'), hex(EXT), 'to the gateway MAC');
      assert.equal(pongOut.subarray(6, 12).toString('hex'), hex(FG), 'from the fg- MAC');
      assert.equal(
        pongOut.subarray(26, 34).toString('hex'),
        'ac18040c08080808',
        '172.24.4.12 -> 8.8.8.8',
      );
      assert.equal(pongOut[22], 62);
    });

    it('a new connection from test02 is SNATed to the FIP, keeping its port', () => {
      replay();
      const up = frames('node2/uplink.pcap').filter((f) => f.readUInt16BE(12) === 0x0800);
      const q = up.find((f) => f[23] === 17)!;
      assert.ok(q, 'the UDP query leaves on the uplink');
      assert.equal(
        q.subarray(26, 34).toString('hex'),
        'ac18040c08080808',
        '172.24.4.12 -> 8.8.8.8',
      );
      assert.equal(q.readUInt16BE(34), 33333, 'source port kept');
      assert.equal(q[22], 62);
      const stats = JSON.parse(replay().stdout);
      assert.equal(stats.packets_in, 4);
      assert.equal(stats.delivered, 4);
    });
  },
);
