/**
 * ARP: arp_op, arp_spa/arp_tpa (CIDR and dotted masks), arp_sha/arp_tha with masks,
 * and the Neutron ARP responder, which turns a request into a reply with load/move on
 * the ARP fields and sends it back with IN_PORT. IPv6: ipv6_src/ipv6_dst with a
 * prefix, icmp6 type/code, tcp6/udp6 ports (masked), hop-by-hop and destination
 * options headers before TCP, IPv6 fragments (first and later), no-next-header.
 */
import assert from 'node:assert/strict';
import {
  arp,
  ETH_ARP,
  ETH_IPV6,
  eth,
  icmp6,
  ip4,
  ipv6,
  ipv6FragData,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  mac,
  tcp6,
  udp6,
  TCP_SYN,
} from '../../packets.js';
import type { OracleScenario } from '../../scenario.js';
import { assertMarkers, configOf } from '../common.js';

const VM = '52:54:00:00:00:01';
const BCAST = 'ff:ff:ff:ff:ff:ff';

function arpFrame(src: string, dst: string, a: Parameters<typeof arp>[0]): Buffer {
  return eth({ src, dst, type: ETH_ARP }, arp(a));
}

function v6(
  src: string,
  dst: string,
  nextHeader: number,
  payload: Buffer,
  ext: { type: number; data: Buffer }[] = [],
  l2dst = '02:00:00:00:00:20',
): Buffer {
  return eth(
    { src: VM, dst: l2dst, type: ETH_IPV6 },
    ipv6({ src, dst, nextHeader, ext }, payload),
  );
}

const A = { src: 'fd00::1', dst: 'fd00::2' };
const padN = Buffer.from([0x01, 0x04, 0, 0, 0, 0]); // PadN option filling the header to 8 bytes

export const scenario: OracleScenario = {
  name: 'arp-ipv6',
  summary:
    'arp_op/spa/tpa/sha/tha, Neutron ARP responder (load/move, IN_PORT); ipv6_src/dst, icmp6, ' +
    'tcp6/udp6, ext headers, v6 fragments',
  config: configOf('arp-ipv6'),
  inputs: () => [
    {
      port: 'p1',
      frames: [
        // Who has 10.0.0.4? -> answered on p1 by the responder.
        arpFrame(VM, BCAST, {
          op: 1,
          sha: VM,
          spa: '10.0.0.8',
          tha: '00:00:00:00:00:00',
          tpa: '10.0.0.4',
        }),
        // A reply from a 52:54:00 host in 10.0.0.0/24 -> M1.
        arpFrame(VM, '02:00:00:00:00:20', {
          op: 2,
          sha: VM,
          spa: '10.0.0.9',
          tha: '02:00:00:00:00:20',
          tpa: '10.0.0.1',
        }),
        // A reply from another OUI -> M3.
        arpFrame('02:11:00:00:00:01', '02:00:00:00:00:20', {
          op: 2,
          sha: '02:11:00:00:00:01',
          spa: '10.0.0.9',
          tha: '02:00:00:00:00:20',
          tpa: '10.0.0.1',
        }),
        // A request from 192.168/16 with an empty THA -> M2.
        arpFrame(VM, BCAST, {
          op: 1,
          sha: VM,
          spa: '192.168.7.7',
          tha: '00:00:00:00:00:00',
          tpa: '192.168.7.1',
        }),
        // A request from elsewhere whose THA starts with 02 -> M4.
        arpFrame(VM, BCAST, {
          op: 1,
          sha: VM,
          spa: '172.16.0.1',
          tha: '02:99:99:99:99:99',
          tpa: '172.16.0.2',
        }),
        // A request from elsewhere with an empty THA -> drop.
        arpFrame(VM, BCAST, {
          op: 1,
          sha: VM,
          spa: '172.16.0.1',
          tha: '00:00:00:00:00:00',
          tpa: '172.16.0.2',
        }),
        // IPv6.
        v6(
          'fd00::1',
          'fd00:0:0:1::5',
          IPPROTO_UDP,
          udp6(
            { src: 'fd00::1', dst: 'fd00:0:0:1::5' },
            { sport: 1, dport: 2, payload: Buffer.from('x') },
          ),
        ), // M11
        v6(
          'fd00::1',
          'ff02::1:ff00:2',
          IPPROTO_ICMPV6,
          icmp6(
            { src: 'fd00::1', dst: 'ff02::1:ff00:2' },
            {
              type: 135,
              payload: Buffer.concat([
                Buffer.from('fd000000000000000000000000000002', 'hex'),
                Buffer.from([1, 1]),
                mac(VM),
              ]),
            },
          ),
          [],
          '33:33:ff:00:00:02',
        ), // M12
        v6(
          A.src,
          A.dst,
          IPPROTO_ICMPV6,
          icmp6(A, { type: 128, rest: 0x00010001, payload: Buffer.from('ping6') }),
        ), // M13
        v6(
          A.src,
          A.dst,
          IPPROTO_ICMPV6,
          icmp6(A, { type: 129, rest: 0x00010001, payload: Buffer.from('pong6') }),
        ), // M1f
        v6(A.src, A.dst, IPPROTO_TCP, tcp6(A, { sport: 33000, dport: 80, flags: TCP_SYN })), // M14
        v6(A.src, A.dst, IPPROTO_TCP, tcp6(A, { sport: 33001, dport: 80, flags: TCP_SYN }), [
          { type: 0, data: padN },
          { type: 60, data: padN },
        ]), // M14 past ext headers
        v6(
          A.src,
          A.dst,
          IPPROTO_UDP,
          udp6(A, { sport: 0x0234, dport: 9, payload: Buffer.from('u') }),
        ), // M15
        v6(
          A.src,
          A.dst,
          IPPROTO_UDP,
          udp6(A, { sport: 0x0334, dport: 9, payload: Buffer.from('u') }),
        ), // M1f
        v6(A.src, A.dst, IPPROTO_UDP, Buffer.alloc(16, 1), [
          { type: 44, data: ipv6FragData(0, true, 0x1234) },
        ]), // M16
        v6(A.src, A.dst, IPPROTO_UDP, Buffer.alloc(16, 2), [
          { type: 44, data: ipv6FragData(2, false, 0x1234) },
        ]), // M17
        v6(A.src, 'ff02::16', 59, Buffer.alloc(0), [
          { type: 0, data: Buffer.from([0x05, 0x02, 0, 0, 0x01, 0x00]) },
        ]), // M18
        v6(A.src, A.dst, 59, Buffer.alloc(0)), // M19
      ],
    },
  ],
  expect: { ports: { p1: 1, p2: 4, p3: 12 } },
  check: (out, inputs) => {
    const reply = out.p1?.[0] as Buffer;
    const want = Buffer.concat([
      mac(VM),
      mac('fa:16:3e:96:e2:a4'),
      Buffer.from([0x08, 0x06]),
      Buffer.from('0001080006040002', 'hex'),
      mac('fa:16:3e:96:e2:a4'),
      ip4('10.0.0.4'),
      mac(VM),
      ip4('10.0.0.8'),
    ]);
    assert.ok(reply.subarray(0, 42).equals(want), 'ARP responder reply');
    assert.equal(reply.length, (inputs[0]?.[0] as Buffer).length, 'same frame size');
    assertMarkers(out, 'p2', [0x01, 0x03, 0x02, 0x04]);
    assertMarkers(
      out,
      'p3',
      [0x11, 0x12, 0x13, 0x1f, 0x14, 0x14, 0x15, 0x1f, 0x16, 0x17, 0x18, 0x19],
    );
  },
};
