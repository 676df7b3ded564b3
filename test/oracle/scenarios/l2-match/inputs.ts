/**
 * L2 matching: in_port by number and name, dl_src/dl_dst with masks (multicast bit,
 * OUI, non-prefix), dl_type, OXM names; output by number/name, several outputs in one
 * list, IN_PORT, FLOOD, ALL, LOCAL, strip_vlan on an untagged frame, drop, empty
 * actions, output to the input port.
 */
import assert from 'node:assert/strict';
import { ETH_IPV4, eth, ipv4, udp4, IPPROTO_UDP } from '../../packets.js';
import type { OracleScenario } from '../../scenario.js';
import { configOf } from '../common.js';

function udp(src: string, dst: string, tag: number): Buffer {
  const l3 = { src: '10.0.0.1', dst: '10.0.0.2' };
  return eth(
    { src, dst, type: ETH_IPV4 },
    ipv4(
      { ...l3, proto: IPPROTO_UDP, id: tag },
      udp4(l3, {
        sport: 1000 + tag,
        dport: 2000,
        payload: Buffer.from(`frame-${tag}`),
      }),
    ),
  );
}

const lldp = eth(
  { src: '02:00:00:00:00:55', dst: '01:80:c2:00:00:0e', type: 0x88cc },
  Buffer.from('020704aabbccddeeff0403', 'hex'),
);

export const scenario: OracleScenario = {
  name: 'l2-match',
  summary:
    'in_port numbers/names, dl_src/dl_dst masks, dl_type, eth_* OXM; output lists, IN_PORT, ' +
    'FLOOD, ALL, LOCAL, drop',
  config: configOf('l2-match'),
  inputs: () => [
    {
      port: 'p1',
      frames: [
        udp('02:00:00:00:00:10', '01:00:5e:00:00:01', 1), // multicast -> FLOOD: p2 p3 p4 br0
        udp('02:00:00:00:00:10', 'ff:ff:ff:ff:ff:ff', 2), // broadcast -> FLOOD
        udp('52:54:00:12:34:56', '02:00:00:00:00:aa', 3), // OUI match -> p2 p3 p4
        udp('52:55:00:12:34:56', '02:00:00:00:00:aa', 4), // OUI miss -> default p4
        lldp, // multicast dst, but in_port=1 flood flow wins (priority 100) -> FLOOD
        udp('02:00:00:00:00:03', '02:00:00:00:00:77', 5), // eth_src+eth_type -> IN_PORT p1
        udp('02:00:00:00:00:10', '02:00:00:00:00:fe', 6), // LOCAL
        udp('02:00:00:00:00:10', '02:00:00:00:ab:c0', 7), // non-prefix mask -> p3
        udp('02:00:00:00:00:10', '02:00:00:00:ab:c1', 8), // masked-out bit differs -> default
        udp('02:00:00:00:00:10', '02:00:00:00:00:5a', 15), // strip_vlan on untagged -> p3
        udp('02:00:00:00:00:10', '02:00:00:00:00:dd', 9), // drop
        udp('02:00:00:00:00:10', '02:00:00:00:00:de', 10), // empty actions
      ],
    },
    {
      port: 'p2',
      frames: [
        udp('02:00:00:00:00:20', '02:00:00:00:00:01', 11), // in_port=p2 -> output:p1
        lldp, // dl_type 0x88cc -> ALL: p1 p3 p4 br0
      ],
    },
    {
      port: 'p3',
      frames: [udp('02:00:00:00:00:30', '02:00:00:00:00:33', 12)], // output:3 skipped, p1
    },
    {
      port: 'p4',
      frames: [
        udp('02:00:00:00:00:40', '02:00:00:00:00:04', 13), // output:4 from p4: nothing
        udp('02:00:00:00:00:40', '02:00:00:00:00:41', 14), // default output:4 from p4: nothing
      ],
    },
  ],
  expect: { ports: { p1: 4, p2: 4, p3: 7, p4: 7, br0: 5 } },
  check: (out, inputs) => {
    const p1in = inputs[0] as Buffer[];
    // IN_PORT returns the frame unchanged.
    assert.ok(
      out.p1?.some((f) => f.equals(p1in[5] as Buffer)),
      'IN_PORT frame on p1',
    );
    // strip_vlan on an untagged frame leaves it as it was.
    assert.ok(
      out.p3?.some((f) => f.equals(p1in[9] as Buffer)),
      'strip_vlan no-op on p3',
    );
    // The default flow rewrote both MACs on its way to p4.
    const rewritten = (out.p4 ?? []).filter(
      (f) => f.subarray(0, 12).toString('hex') === '0e00000000ff020000000099',
    );
    assert.equal(rewritten.length, 2, 'two frames took the default flow to p4');
  },
};
