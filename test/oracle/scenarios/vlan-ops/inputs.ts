/**
 * VLAN: dl_vlan, dl_vlan_pcp, vlan_tci with masks, dl_vlan=0xffff, OXM vlan_vid;
 * push_vlan (0x8100 and 802.1ad 0x88a8), pop_vlan, strip_vlan, mod_vlan_vid and
 * mod_vlan_pcp on untagged frames (they push a tag), set_field 4097->vlan_vid after
 * push_vlan, QinQ frames in and out. Frames 4 and 7 have no flow (see br0.flows).
 */
import assert from 'node:assert/strict';
import { ETH_IPV4, eth, ipv4, udp4, IPPROTO_UDP, type VlanTag } from '../../packets.js';
import type { OracleScenario } from '../../scenario.js';
import { configOf } from '../common.js';

function udp(dst: string, vlans: VlanTag[], n: number): Buffer {
  const l3 = { src: '10.0.0.1', dst: '10.0.0.2' };
  return eth(
    { src: '02:00:00:00:00:10', dst, type: ETH_IPV4, vlans },
    ipv4(
      { ...l3, proto: IPPROTO_UDP, id: n },
      udp4(l3, {
        sport: 1000 + n,
        dport: 2000,
        payload: Buffer.from(`vlan-${n}`),
      }),
    ),
  );
}

/** TPID/TCI pairs of the tags of a frame, outermost first, as "tpid/vid/pcp". */
function tags(f: Buffer): string[] {
  const out: string[] = [];
  let off = 12;
  while (off + 4 <= f.length) {
    const tpid = f.readUInt16BE(off);
    if (tpid !== 0x8100 && tpid !== 0x88a8) break;
    const tci = f.readUInt16BE(off + 2);
    out.push(`${tpid.toString(16)}/${tci & 0xfff}/${tci >> 13}`);
    off += 4;
  }
  return out;
}

export const scenario: OracleScenario = {
  name: 'vlan-ops',
  summary:
    'dl_vlan/dl_vlan_pcp/vlan_tci masks/vlan_vid; push/pop/strip/mod_vlan_* incl. untagged and ' +
    'QinQ',
  config: configOf('vlan-ops'),
  inputs: () => [
    {
      port: 'p1',
      frames: [
        udp('02:00:00:00:00:01', [], 1), // push_vlan + set_field 4097 -> p2 tag 1
        udp('02:00:00:00:00:02', [], 2), // mod_vlan_vid on untagged pushes a tag -> p2
        udp('02:00:00:00:00:03', [], 3), // mod_vlan_pcp on untagged -> p2
        udp('02:00:00:00:00:04', [], 4), // no flow -> drop
        udp('02:00:00:00:00:05', [], 5), // push_vlan alone -> p2 tag vid 0
        udp('02:00:00:00:00:06', [], 6), // double push: 802.1ad outer, 802.1Q inner -> p4
        udp('02:00:00:00:00:07', [], 7), // no flow for it (see br0.flows) -> drop
        udp('02:00:00:00:00:08', [{ vid: 10, pcp: 5 }], 8), // pop -> p3
        udp('02:00:00:00:00:09', [{ vid: 10, pcp: 2 }], 9), // mod_vlan_vid keeps pcp -> p2
        udp('02:00:00:00:00:0a', [{ vid: 30, pcp: 1 }], 10), // vlan_vid OXM -> p2
        udp('02:00:00:00:00:0b', [{ vid: 100 }], 11), // push 802.1ad over 802.1Q -> p4
        // QinQ in, pop -> p4
        udp('02:00:00:00:00:0c', [{ vid: 200, tpid: 0x88a8 }, { vid: 100 }], 12),
        udp('02:00:00:00:00:0d', [{ vid: 50, pcp: 6 }], 13), // tci mask vid 48..63 -> p3
        udp('02:00:00:00:00:0e', [{ vid: 50, pcp: 1 }], 14), // VID 50 also -> p3
        udp('02:00:00:00:00:0f', [{ vid: 0, pcp: 4 }], 15), // priority tag: tagged -> p3
        udp('02:00:00:00:00:10', [], 16), // untagged, no flow -> drop
      ],
    },
  ],
  expect: { ports: { p2: 6, p3: 4, p4: 3 } },
  check: (out) => {
    assert.deepEqual(
      out.p2?.map(tags),
      [
        ['8100/1/0'], // push_vlan + set_field:4097->vlan_vid
        ['8100/10/5'], // mod_vlan_vid + mod_vlan_pcp on untagged push a tag
        ['8100/0/3'], // mod_vlan_pcp alone pushes VID 0
        ['8100/0/0'], // push_vlan alone: VID 0, PCP 0
        ['8100/20/2'], // mod_vlan_vid keeps the PCP
        ['8100/4/7'], // set_field vlan_vid + vlan_pcp
      ],
      'p2 tags',
    );
    // The last push is outermost; an 802.1ad tag pushed over a 802.1Q one; pop of QinQ.
    assert.deepEqual(
      out.p4?.map(tags),
      [['8100/100/0', '88a8/200/0'], ['88a8/200/0', '8100/100/0'], ['8100/100/0']],
      'p4 tags',
    );
    assert.deepEqual(out.p3?.map(tags), [[], [], [], ['8100/0/4']], 'p3 tags');
    // Pushing a tag grows the 60-byte frame to 64; popping shrinks it to 56 (no re-padding).
    assert.equal(out.p2?.[0]?.length, 64);
    assert.equal(out.p3?.[0]?.length, 56);
  },
};
