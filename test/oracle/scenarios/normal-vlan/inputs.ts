/**
 * NORMAL with VLANs: access ports (`tag`) add and remove the tag, trunk ports carry
 * it, `trunks=10` limits a trunk, the LOCAL port is a trunk for every VLAN, MACs are
 * learned per VLAN. Each destination is learned in an earlier input than the first
 * frame sent to it, so no flood megaflow can still be cached when it is used.
 */
import assert from 'node:assert/strict';
import { ETH_IPV4, eth, ipv4, udp4, IPPROTO_UDP, type VlanTag } from '../../packets.js';
import type { OracleScenario } from '../../scenario.js';
import { configOf } from '../common.js';

const A = '02:00:00:00:0a:01'; // behind a1 (VLAN 10)
const B = '02:00:00:00:0a:02'; // behind a2 (VLAN 10)
const C = '02:00:00:00:0a:03'; // behind a3 (VLAN 20)
const D = '02:00:00:00:0d:01'; // behind t1
const E = '02:00:00:00:0e:01'; // behind t2
const BCAST = 'ff:ff:ff:ff:ff:ff';

function udp(src: string, dst: string, vlans: VlanTag[], n: number): Buffer {
  const l3 = { src: '10.0.0.1', dst: '10.0.0.2' };
  return eth(
    { src, dst, type: ETH_IPV4, vlans },
    ipv4(
      { ...l3, proto: IPPROTO_UDP, id: n },
      udp4(l3, {
        sport: 1000 + n,
        dport: 2000,
        payload: Buffer.from(`normal-${n}`),
      }),
    ),
  );
}

function vid(f: Buffer): number | null {
  return f.readUInt16BE(12) === 0x8100 ? f.readUInt16BE(14) & 0xfff : null;
}

export const scenario: OracleScenario = {
  name: 'normal-vlan',
  summary:
    'NORMAL: access tag, trunk, trunks=10, LOCAL as trunk, per-VLAN learning, tagged on access ' +
    'port',
  config: configOf('normal-vlan'),
  inputs: () => [
    // 1: A broadcasts in VLAN 10: a2 untagged; t1, t2, br0 tagged 10.
    { port: 'a1', frames: [udp(A, BCAST, [], 1)] },
    // 2: C broadcasts in VLAN 20: t1 and br0 tagged 20 (t2 only trunks 10).
    { port: 'a3', frames: [udp(C, BCAST, [], 2)] },
    {
      port: 't1',
      frames: [
        udp(D, A, [{ vid: 10 }], 3), // learned A in VLAN 10 -> a1 untagged
        udp(D, C, [{ vid: 20 }], 4), // learned C in VLAN 20 -> a3 untagged
        udp(D, A, [{ vid: 20 }], 5), // A is not known in VLAN 20: flood VLAN 20 -> a3, br0
        udp(D, BCAST, [{ vid: 30 }], 6), // VLAN 30: only br0
        udp(D, BCAST, [], 7), // untagged on a trunk = VLAN 0: only br0
      ],
    },
    {
      port: 't2',
      frames: [
        udp(E, BCAST, [{ vid: 20 }], 8), // VLAN 20 not in trunks: dropped
        udp(E, D, [{ vid: 10 }], 9), // D learned in VLAN 10 (frame 3) -> t1 tagged 10
        udp(E, BCAST, [], 10), // untagged on trunks=10: VLAN 0 not allowed, dropped
      ],
    },
    {
      port: 'a2',
      frames: [
        udp(B, A, [], 11), // -> a1
        udp(B, E, [], 12), // E learned on t2 in VLAN 10 -> t2 tagged 10
        udp(B, A, [{ vid: 10 }], 13), // tagged frame on an access port: dropped
        udp(B, A, [{ vid: 0, pcp: 3 }], 14), // priority-tagged on access port: -> a1
      ],
    },
  ],
  expect: { ports: { a1: 3, a2: 1, a3: 2, t1: 3, t2: 2, br0: 5 } },
  check: (out) => {
    // Access ports emit untagged frames, trunks tagged ones.
    for (const p of ['a1', 'a2', 'a3']) {
      for (const f of out[p] ?? []) assert.equal(vid(f), null, `${p} emits untagged`);
    }
    assert.deepEqual(out.t1?.map(vid), [10, 20, 10], 't1 VIDs');
    assert.deepEqual(out.t2?.map(vid), [10, 10], 't2 VIDs');
    assert.deepEqual(out.br0?.map(vid), [10, 20, 20, 30, null], 'LOCAL VIDs');
    // A tag removed on output is not re-padded: a 60-byte tagged input leaves an access
    // port as 56 bytes.
    assert.deepEqual(
      out.a1?.map((f) => f.length),
      [56, 60, 56],
      'a1 frame sizes',
    );
    assert.equal(out.t1?.[0]?.length, 64, 'a tag added on a trunk grows the frame');
  },
};
