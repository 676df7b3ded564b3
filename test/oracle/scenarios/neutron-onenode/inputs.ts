/**
 * A Neutron compute node (node2 of the seed) on one host: br-int tags VM traffic with
 * the local VLAN (port `tag`) and forwards with NORMAL after the ARP/MAC anti-spoofing
 * tables; br-tun sends unicast through table 20 (an l2population flow, or flows
 * learned in table 10 from decapsulated traffic), answers ARP for known addresses in
 * table 21, floods to every tunnel in table 22, and maps VNIs to local VLANs in table 4.
 *
 * The order matters and both tools must see it: test01's MAC (on node1) is learned
 * from a VXLAN frame before test02 answers it, and test04's (on node3) before test03
 * answers it.
 */
import assert from 'node:assert/strict';
import { arp, ETH_ARP, eth, icmpFrame, mac, vxlanFrame } from '../../packets.js';
import type { OracleScenario } from '../../scenario.js';
import { configOf } from '../common.js';

const T1 = { mac: 'fa:16:3e:5a:6e:54', ip: '10.0.0.7' }; // test01 on node1
const T2 = { mac: 'fa:16:3e:76:47:75', ip: '10.0.0.8' }; // test02 here, qvo28e6e267-f3
const T3 = { mac: 'fa:16:3e:3b:1a:12', ip: '10.1.0.12' }; // test03 here, qvo06557f2b-83
const T4 = { mac: 'fa:16:3e:23:c5:28', ip: '10.1.0.10' }; // test04 on node3
const T5 = { mac: 'fa:16:3e:96:e2:a4', ip: '10.0.0.4' }; // test05 on node3
const NODE = {
  n1: { mac: '08:00:27:a6:c6:02', ip: '192.168.1.11' },
  n2: { mac: '08:00:27:8b:a7:13', ip: '192.168.1.12' },
  n3: { mac: '08:00:27:aa:d4:28', ip: '192.168.1.13' },
};
const BCAST = 'ff:ff:ff:ff:ff:ff';
const VM28 = 'qvo28e6e267-f3';
const VM06 = 'qvo06557f2b-83';

function ping(
  from: { mac: string; ip: string },
  to: { mac: string; ip: string },
  type: number,
  seq: number,
): Buffer {
  return icmpFrame(
    { src: from.mac, dst: to.mac },
    { src: from.ip, dst: to.ip, id: 0x100 + seq },
    { type, rest: (0x4242 << 16) | seq, payload: Buffer.from('abcdefghijklmnopqrstuvwxyz012345') },
  );
}

function arpReq(from: { mac: string; ip: string }, tpa: string): Buffer {
  return eth(
    { src: from.mac, dst: BCAST, type: ETH_ARP },
    arp({ op: 1, sha: from.mac, spa: from.ip, tha: '00:00:00:00:00:00', tpa }),
  );
}

function arpReply(from: { mac: string; ip: string }, to: { mac: string; ip: string }): Buffer {
  return eth(
    { src: from.mac, dst: to.mac, type: ETH_ARP },
    arp({ op: 2, sha: from.mac, spa: from.ip, tha: to.mac, tpa: to.ip }),
  );
}

function fromNode(
  node: { mac: string; ip: string },
  vni: number,
  sport: number,
  inner: Buffer,
): Buffer {
  return vxlanFrame(
    {
      outerSrcMac: node.mac,
      outerDstMac: NODE.n2.mac,
      outerSrc: node.ip,
      outerDst: NODE.n2.ip,
      sport,
      vni,
    },
    inner,
  );
}

/** "dst-ip/vni" of a VXLAN frame on the underlay. */
function tunnel(f: Buffer): string {
  return `${f.subarray(30, 34).join('.')}/0x${f.readUIntBE(46, 3).toString(16)}`;
}

export const scenario: OracleScenario = {
  name: 'neutron-onenode',
  summary:
    'Neutron br-int/br-tun/br-phy: local VLAN tags + NORMAL, anti-spoofing, learn in table 10, ' +
    'ARP responder, flood to tunnels',
  config: configOf('neutron-onenode'),
  inputs: () => [
    // 1. test02 asks for test05's MAC: answered by br-tun's ARP responder.
    { port: VM28, frames: [arpReq(T2, T5.ip)] },
    // 2. test02 pings test05: unicast to patch-tun (learned from the responder's reply),
    //    l2population flow -> VXLAN 0x42 to node3 only.
    { port: VM28, frames: [ping(T2, T5, 8, 1)] },
    // 3. test01 (node1) pings test02: decap, learn test01 in table 20, deliver.
    { port: 'eth1', frames: [fromNode(NODE.n1, 0x42, 49152, ping(T1, T2, 8, 2))] },
    // 4. test02 answers: the learned flow sends it to node1 only.
    { port: VM28, frames: [ping(T2, T1, 0, 2)] },
    // 5. test02 to an unknown MAC: flooded to both tunnels.
    { port: VM28, frames: [ping(T2, { mac: 'fa:16:3e:00:00:99', ip: '10.0.0.99' }, 8, 3)] },
    // 6. test04 (node3, VNI 5) broadcasts an ARP request: VLAN 2 on br-int -> test03.
    { port: 'eth1', frames: [fromNode(NODE.n3, 0x5, 49153, arpReq(T4, T3.ip))] },
    // 7. test03 replies to test04: learned flow -> VXLAN 0x5 to node3.
    { port: VM06, frames: [arpReply(T3, T4)] },
    // 8. An unknown VNI: table 4 drops it.
    { port: 'eth1', frames: [fromNode(NODE.n3, 0x63, 49154, ping(T4, T3, 8, 4))] },
    // 9. test03 claims another IP in ARP: table 24 drops it.
    { port: VM06, frames: [arpReq({ mac: T3.mac, ip: '10.1.0.99' }, T4.ip)] },
    // 10. test02 with a spoofed source MAC: table 25 drops it.
    { port: VM28, frames: [ping({ mac: 'fa:16:3e:66:66:66', ip: T2.ip }, T5, 8, 5)] },
  ],
  // br-int's LOCAL port (a trunk) sees the floods: the ARP request, the ping to the
  // unknown MAC, test04's broadcast. Not the ping to test05: br-int learned test05's MAC
  // on patch-tun from the ARP responder's reply.
  expect: { ports: { [VM28]: 2, [VM06]: 1, 'br-int': 3, eth1: 5 } },
  check: (out, inputs) => {
    // The ARP responder's reply reaches test02 untagged, from test05's MAC.
    const reply = out[VM28]?.[0] as Buffer;
    assert.equal(reply.readUInt16BE(12), ETH_ARP, 'ARP reply untagged');
    assert.ok(reply.subarray(6, 12).equals(mac(T5.mac)), 'ARP reply from test05');
    // The decapsulated ping arrives untagged and unchanged.
    const decap = (inputs[2]?.[0] as Buffer).subarray(50);
    assert.ok(out[VM28]?.[1]?.equals(decap), 'ping from test01 delivered unchanged');
    assert.ok(out[VM06]?.[0]?.equals((inputs[5]?.[0] as Buffer).subarray(50)), 'ARP to test03');
    assert.deepEqual(
      out.eth1?.map(tunnel),
      [
        '192.168.1.13/0x42', // l2population
        '192.168.1.11/0x42', // learned from node1
        '192.168.1.11/0x42', // flood
        '192.168.1.13/0x42',
        '192.168.1.13/0x5', // learned from node3
      ],
      'tunnel destinations and VNIs',
    );
    // The learned flow strips the local VLAN: the inner frame is what test02 sent.
    assert.ok(out.eth1?.[1]?.subarray(50).equals(inputs[3]?.[0] as Buffer), 'inner frame intact');
  },
};
