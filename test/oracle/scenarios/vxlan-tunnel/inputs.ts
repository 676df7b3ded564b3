/**
 * VXLAN through OVS native tunnelling. Encap: set_tunnel, set_field:->tun_id,
 * load:->NXM_NX_TUN_ID[], set_field:->tun_dst with a remote_ip=flow port, one frame
 * to two tunnels, a port with csum=true (outer UDP checksum). Decap (VXLAN injected on
 * the underlay NIC eth0): tun_id exact and masked, tun_src, tun_dst, the fixed-remote
 * port chosen over the remote_ip=flow one, unknown VNI, unknown source, outer UDP
 * checksum valid and invalid, I flag clear, wrong UDP port and wrong outer IP (both
 * stay plain underlay traffic and reach br-phy's LOCAL port through NORMAL).
 */
import assert from 'node:assert/strict';
import { udpFrame, vxlanFrame, type VxlanFrameOpts } from '../../packets.js';
import type { OracleScenario } from '../../scenario.js';
import { assertMarkers, configOf } from '../common.js';

const PHY_MAC = 'aa:55:aa:55:00:12';
const LOCAL_IP = '192.168.1.12';

function inner(n: number, src = '52:54:00:00:00:02', dst = '52:54:00:00:00:01'): Buffer {
  return udpFrame(
    { src, dst },
    { src: '10.0.0.2', dst: '10.0.0.1', id: n },
    {
      sport: 5000 + n,
      dport: 1000,
      payload: Buffer.from(`inner-${n}`),
    },
  );
}

/** VXLAN from underlay host 192.168.1.`host` (MAC aa:bb:cc:00:00:`host`). */
function fromRemote(
  host: number,
  vni: number,
  n: number,
  more: Partial<VxlanFrameOpts> = {},
): Buffer {
  return vxlanFrame(
    {
      outerSrcMac: `aa:bb:cc:00:00:${host}`,
      outerDstMac: PHY_MAC,
      outerSrc: `192.168.1.${host}`,
      outerDst: LOCAL_IP,
      sport: 50000 + n,
      vni,
      ...more,
    },
    inner(n),
  );
}

/** Outer destination IP, UDP destination port and VNI of an encapsulated frame. */
function outer(f: Buffer): string {
  const vni = f.readUIntBE(46, 3).toString(16);
  return `${f.subarray(30, 34).join('.')}:${f.readUInt16BE(36)}/vni=0x${vni}`;
}

export const scenario: OracleScenario = {
  name: 'vxlan-tunnel',
  summary:
    'VXLAN encap (set_tunnel, tun_id set_field/load, tun_dst, csum) and decap (tun_id/src/dst, ' +
    'bad VNI/port/flags/csum)',
  config: configOf('vxlan-tunnel'),
  inputs: () => {
    const badCsum = fromRemote(13, 0x42, 11, { udpChecksum: true });
    badCsum.writeUInt16BE(badCsum.readUInt16BE(40) ^ 0x5a5a, 40);
    const flagsClear = fromRemote(13, 0x42, 9);
    flagsClear[42] = 0x00;
    return [
      { port: 'p1', frames: [inner(1, '52:54:00:00:00:01', '52:54:00:00:00:02')] },
      { port: 'p2', frames: [inner(2, '52:54:00:00:00:01', '52:54:00:00:00:03')] },
      { port: 'p3', frames: [inner(3, '52:54:00:00:00:01', '52:54:00:00:00:04')] },
      {
        port: 'eth0',
        frames: [
          fromRemote(13, 0x42, 4), // -> p1
          fromRemote(13, 0x155, 5), // masked tun_id -> p2 (M13)
          fromRemote(13, 0x999, 6), // unknown VNI: no flow, dropped
          fromRemote(14, 5, 7), // -> p3 (M14)
          fromRemote(15, 7, 8), // remote_ip=flow port, tun_src .15 -> p3 (M15)
          flagsClear, // VXLAN I flag clear
          fromRemote(99, 0x42, 10), // unknown source: the flow-based port, no flow matches
          badCsum, // outer UDP checksum wrong
          fromRemote(13, 0x42, 12, { udpChecksum: true }), // outer UDP checksum right -> p1
          fromRemote(13, 0x42, 13, { dport: 4790 }), // not VXLAN: NORMAL -> br-phy LOCAL
          fromRemote(13, 0x42, 14, { outerDst: '192.168.1.50' }), // not for us: -> br-phy LOCAL
        ],
      },
    ];
  },
  expect: { ports: { eth0: 4, p1: 2, p2: 1, p3: 2, 'br-phy': 2 } },
  notes: [
    'frames with the VXLAN I flag clear and with a bad outer UDP checksum are dropped by the ' +
      'tunnel pop',
  ],
  check: (out, inputs) => {
    assert.deepEqual(
      out.eth0?.map(outer),
      [
        '192.168.1.13:4789/vni=0x42',
        '192.168.1.13:4789/vni=0x77',
        '192.168.1.14:4789/vni=0x77',
        '192.168.1.15:4789/vni=0x99',
      ],
      'encapsulated frames',
    );
    const eth0 = out.eth0 ?? [];
    assert.equal(eth0[1]?.readUInt16BE(40), 0, 'no outer UDP checksum without csum=true');
    assert.notEqual(eth0[2]?.readUInt16BE(40), 0, 'outer UDP checksum with csum=true');
    eth0.forEach((f, i) => {
      const k = i === 0 ? 0 : i < 3 ? 1 : 2;
      assert.ok(f.subarray(50).equals(inputs[k]?.[0] as Buffer), `eth0 frame ${i}: inner intact`);
    });
    const eth0In = inputs[3] as Buffer[];
    assert.ok(out.p1?.[0]?.equals((eth0In[0] as Buffer).subarray(50)), 'decap to p1');
    assertMarkers(out, 'p2', [0x13]);
    assertMarkers(out, 'p3', [0x14, 0x15]);
    assert.ok(out['br-phy']?.[0]?.equals(eth0In[9] as Buffer), 'wrong UDP port stays underlay');
  },
};
