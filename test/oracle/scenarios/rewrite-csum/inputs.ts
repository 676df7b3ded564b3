/**
 * Rewrites that touch checksums: mod_nw_src/dst, mod_tp_src/dst, set_field on ip_src,
 * tcp_dst, udp_src, ipv6_src/dst, load into NXM_OF_IP_DST, mod_nw_tos, ip_dscp, ip_ecn,
 * on TCP, UDP (checksum set, checksum 0, and a rewrite whose new checksum is 0), ICMP
 * (including an error carrying an inner header), IPv4 with options, TCP6, UDP6 and
 * ICMPv6; dec_ttl on TTL 64, 2, 1 and 0, twice in a row, after an output, on IPv6.
 */
import assert from 'node:assert/strict';
import {
  ETH_IPV4,
  ETH_IPV6,
  eth,
  icmp4,
  icmp6,
  icmpFrame,
  inetChecksum,
  ip4,
  ipv4,
  ipv6,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  tcp6,
  tcpFrame,
  udp4,
  udp6,
  udpFrame,
  verifyChecksums,
  TCP_ACK,
  TCP_PSH,
} from '../../packets.js';
import type { OracleScenario } from '../../scenario.js';
import { configOf } from '../common.js';

const SRC = '02:00:00:00:00:99';
const to = (n: number): string => `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;
const IP = { src: '10.0.0.1', dst: '10.0.0.2' };
const IP6 = { src: 'fd00::1', dst: 'fd00::2' };

function udp(
  sel: number,
  n: number,
  more: {
    ttl?: number;
    tos?: number;
    csum?: boolean;
    options?: Buffer;
    payload?: Buffer;
    dport?: number;
  } = {},
): Buffer {
  return udpFrame(
    { src: SRC, dst: to(sel) },
    { ...IP, id: n, ttl: more.ttl, tos: more.tos, options: more.options },
    {
      sport: 1000 + n,
      dport: more.dport ?? 2000,
      payload: more.payload ?? Buffer.from(`rw-${n}-payload`),
      checksum: more.csum ?? true,
    },
  );
}

function tcp(sel: number, n: number): Buffer {
  return tcpFrame(
    { src: SRC, dst: to(sel) },
    { ...IP, id: n },
    {
      sport: 40000 + n,
      dport: 80,
      seq: 0x01020304,
      ack: 0x0a0b0c0d,
      flags: TCP_PSH | TCP_ACK,
      payload: Buffer.from(`GET /${n}`),
    },
  );
}

function tcpv6(sel: number, n: number, hopLimit: number): Buffer {
  return eth(
    { src: SRC, dst: to(sel), type: ETH_IPV6 },
    ipv6(
      { ...IP6, nextHeader: IPPROTO_TCP, hopLimit },
      tcp6(IP6, {
        sport: 40000 + n,
        dport: 443,
        seq: 7,
        flags: TCP_ACK,
        payload: Buffer.from(`v6-${n}`),
      }),
    ),
  );
}

/**
 * A UDP frame to port 2000 whose checksum becomes exactly 0 once mod_tp_dst:4444 is
 * applied: the payload word that makes the one's-complement sum 0xffff is chosen here.
 */
function udpZeroAfterRewrite(n: number): Buffer {
  const probe = udp4(IP, {
    sport: 1000 + n,
    dport: 4444,
    payload: Buffer.alloc(2),
    checksum: false,
  });
  const pseudo = Buffer.concat([
    ip4(IP.src),
    ip4(IP.dst),
    Buffer.from([0, IPPROTO_UDP, 0, probe.length]),
  ]);
  const word = inetChecksum(pseudo, probe);
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(word, 0);
  return udp(0x11, n, { payload });
}

/** ICMP destination unreachable carrying the first 28 bytes of a UDP datagram. */
function icmpError(n: number): Buffer {
  const inner = ipv4(
    { src: '10.0.0.2', dst: '10.0.0.1', proto: IPPROTO_UDP, id: 77 },
    udp4(
      { src: '10.0.0.2', dst: '10.0.0.1' },
      { sport: 2000, dport: 1000, payload: Buffer.alloc(0) },
    ),
  );
  return icmpFrame(
    { src: SRC, dst: to(0x0d) },
    { ...IP, id: n },
    { type: 3, code: 3, payload: inner },
  );
}

const ttlOf = (f: Buffer): number => f[22] as number;

export const scenario: OracleScenario = {
  name: 'rewrite-csum',
  summary:
    'mod_nw_*/mod_tp_*/set_field/load rewrites with TCP, UDP, ICMP, ICMPv6 checksums; ' +
    'nw_tos/ecn; dec_ttl 64/2/1/0',
  config: configOf('rewrite-csum'),
  inputs: () => [
    {
      port: 'p1',
      frames: [
        tcp(0x01, 1),
        udp(0x02, 2),
        udp(0x03, 3, { csum: false }), // UDP checksum 0 stays 0
        icmpFrame(
          { src: SRC, dst: to(0x04) },
          { ...IP, id: 4 },
          { type: 8, rest: 0x12340001, payload: Buffer.from('ping') },
        ),
        udp(0x05, 5, { tos: 0x03 }), // mod_nw_tos keeps the ECN bits
        udp(0x06, 6, { ttl: 64 }),
        udp(0x06, 7, { ttl: 2 }),
        udp(0x06, 8, { ttl: 1 }), // dec_ttl stops: dropped
        udp(0x06, 9, { ttl: 0 }), // dropped
        tcp(0x07, 10),
        udp(0x08, 11),
        udp(0x09, 12, { ttl: 1 }), // the output before dec_ttl happens: p3 only
        udp(0x09, 13, { ttl: 5 }), // p3 (TTL 5) and p2 (TTL 4)
        tcpv6(0x0a, 14, 64),
        tcpv6(0x0a, 15, 1), // hop limit 1: dropped
        udp(0x0b, 16, { ttl: 2 }), // second dec_ttl sees TTL 1: dropped
        udp(0x0b, 17, { ttl: 3 }), // leaves with TTL 1
        udp(0x0c, 18, { options: Buffer.from([0x94, 0x04, 0x00, 0x00]) }),
        icmpError(19),
        udp(0x0e, 20),
        eth(
          { src: SRC, dst: to(0x0f), type: ETH_IPV6 },
          ipv6(
            { ...IP6, nextHeader: IPPROTO_UDP },
            udp6(IP6, { sport: 5000, dport: 53, payload: Buffer.from('udp6-21') }),
          ),
        ),
        eth(
          { src: SRC, dst: to(0x10), type: ETH_IPV6 },
          ipv6(
            { ...IP6, nextHeader: IPPROTO_ICMPV6 },
            icmp6(IP6, { type: 128, rest: 0x00220001, payload: Buffer.from('ping6') }),
          ),
        ),
        udpZeroAfterRewrite(23),
        udp(0x12, 24, { ttl: 1 }), // dec_ttl fails before mod_nw_tos: dropped
      ],
    },
  ],
  expect: { ports: { p2: 18, p3: 2 } },
  check: (out) => {
    const p2 = out.p2 ?? [];
    p2.forEach((f, i) => {
      const r = verifyChecksums(f);
      if (r.ipHeader !== undefined) assert.ok(r.ipHeader, `p2 frame ${i}: IPv4 header checksum`);
      assert.ok(r.l4 !== false, `p2 frame ${i}: L4 checksum (proto ${r.l4Proto})`);
    });
    assert.equal(verifyChecksums(p2[2] as Buffer).udpZero, true, 'UDP checksum 0 stays 0');
    assert.equal(p2[4]?.[15], 0xbb, 'mod_nw_tos:184 keeps ECN 3');
    assert.deepEqual(
      [5, 6, 9].map((i) => ttlOf(p2[i] as Buffer)),
      [63, 1, 4],
      'dec_ttl results',
    );
    assert.equal(p2[10]?.[21], 63, 'IPv6 hop limit decremented');
    assert.equal(ttlOf(p2[11] as Buffer), 1, 'two dec_ttl on TTL 3');
    assert.equal(ttlOf(out.p3?.[1] as Buffer), 5, 'output before dec_ttl sees the old TTL');
    assert.equal(p2[14]?.[15], (10 << 2) | 2, 'ip_dscp 10 + ip_ecn 2');
    // RFC 768: a computed UDP checksum of 0 is transmitted as 0xffff.
    assert.equal(p2[17]?.readUInt16BE(40), 0xffff, 'UDP checksum that computes to 0');
  },
};
