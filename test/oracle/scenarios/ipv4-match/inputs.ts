/**
 * IPv4/L4 matches: nw_src/nw_dst as CIDR, dotted and non-contiguous masks, ip_src and
 * ip_dst (OXM), nw_proto, nw_tos (ECN bits ignored), nw_ecn, nw_ttl, tp_src, tp_dst
 * and udp_dst with bitwise masks, tcp_dst (OXM), icmp_type/icmp_code, the ip, tcp,
 * udp, icmp and sctp shorthands. Each matching frame has a near miss that is dropped.
 */
import { ETH_IPV4, eth, icmpFrame, ipv4, tcpFrame, udpFrame, TCP_SYN } from '../../packets.js';
import type { OracleScenario } from '../../scenario.js';
import { assertMarkers, configOf } from '../common.js';

const L2 = { src: '02:00:00:00:00:10', dst: '02:00:00:00:00:20' };

function udp(
  src: string,
  dst: string,
  n: number,
  more: { sport?: number; dport?: number; tos?: number; ttl?: number } = {},
): Buffer {
  return udpFrame(
    L2,
    { src, dst, id: n, tos: more.tos, ttl: more.ttl },
    {
      sport: more.sport ?? 1000 + n,
      dport: more.dport ?? 2000,
      payload: Buffer.from(`ipv4-${n}`),
    },
  );
}

function tcp(dport: number, n: number): Buffer {
  return tcpFrame(
    L2,
    { src: '10.0.0.1', dst: '10.0.0.2', id: n },
    {
      sport: 40000 + n,
      dport,
      flags: TCP_SYN,
      seq: 1000 * n,
    },
  );
}

/** An SCTP common header (checksum left 0: nothing on the path verifies it). */
function sctp(dport: number, n: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt16BE(3000 + n, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt32BE(0x11223344, 4);
  return eth(
    { ...L2, type: ETH_IPV4 },
    ipv4({ src: '10.0.0.1', dst: '10.0.0.2', proto: 132, id: n }, h),
  );
}

const icmp = (type: number, code: number, n: number): Buffer =>
  icmpFrame(
    L2,
    { src: '10.0.0.1', dst: '10.0.0.2', id: n },
    { type, code, rest: n, payload: Buffer.from('icmp') },
  );

export const scenario: OracleScenario = {
  name: 'ipv4-match',
  summary:
    'nw_src/nw_dst CIDR, dotted, non-contiguous; nw_proto/tos/ecn/ttl; tp masks; icmp type/code; ' +
    'OXM; sctp',
  config: configOf('ipv4-match'),
  inputs: () => [
    {
      port: 'p1',
      frames: [
        udp('10.1.2.3', '10.2.9.9', 1), // M1
        udp('10.1.2.3', '10.3.9.9', 2), // miss
        udp('10.0.0.1', '10.9.77.1', 3), // M2 (255.255.0.255)
        udp('10.0.0.1', '10.9.77.2', 4), // miss
        tcp(0x1234, 5), // M3 (0x1000/0xf000)
        tcp(0x2000, 6), // miss
        udp('10.0.0.1', '10.0.0.2', 7, { sport: 53 }), // M4
        tcp(22, 8), // M5
        udp('10.0.0.1', '10.0.0.2', 9, { dport: 0x0234 }), // M6
        eth(
          { ...L2, type: ETH_IPV4 },
          ipv4(
            { src: '10.0.0.1', dst: '10.0.0.2', proto: 47, id: 10 },
            Buffer.from('00000800', 'hex'),
          ),
        ), // M7
        udp('10.0.0.1', '10.0.0.2', 11, { tos: 0x28 }), // M8
        udp('10.0.0.1', '10.0.0.2', 12, { tos: 0x29 }), // M8: nw_tos ignores the ECN bits
        udp('10.0.0.1', '10.0.0.2', 13, { tos: 0x03 }), // M9
        udp('10.0.0.1', '10.0.0.2', 14, { ttl: 1 }), // M10
        icmp(8, 0, 15), // M11
        icmp(3, 3, 16), // M12
        icmp(3, 1, 17), // miss
        udp('10.4.3.1', '10.5.5.5', 18), // M13
        udp('10.4.4.1', '10.5.5.5', 19), // miss
        sctp(5000, 20), // M14
        sctp(5001, 21), // miss
      ],
    },
  ],
  expect: { ports: { p2: 5, p3: 4, p4: 6 } },
  check: (out) => {
    assertMarkers(out, 'p2', [0x01, 0x02, 0x0b, 0x0c, 0x0d]);
    assertMarkers(out, 'p3', [0x03, 0x04, 0x05, 0x06]);
    assertMarkers(out, 'p4', [0x07, 0x08, 0x08, 0x09, 0x0a, 0x0e]);
  },
};
