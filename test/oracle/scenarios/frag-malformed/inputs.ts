/**
 * IPv4 fragments against every nw_frag value, IPv4 options, and malformed frames.
 *
 * Malformed inputs (all on p1, after the fragments):
 * - a frame with 10 bytes of IPv4 header (no Ethernet padding);
 * - a frame whose IPv4 total length (200) is larger than the frame;
 * - a frame whose IPv4 header length field says 4 words (< 20 bytes);
 * - a frame with a wrong IPv4 header checksum (nothing on the path verifies it);
 * - a 14-byte frame with EtherType IPv4 and nothing after it;
 * - a 10-byte frame, which the oracle cannot inject (counted in skippedShort).
 */
import assert from 'node:assert/strict';
import { ETH_IPV4, eth, ipv4, udp4, IPPROTO_UDP, mac } from '../../packets.js';
import type { OracleScenario } from '../../scenario.js';
import { assertMarkers, configOf } from '../common.js';

const L2 = { src: '02:00:00:00:00:10', dst: '02:00:00:00:00:20', type: ETH_IPV4 };
const IP = { src: '10.0.0.1', dst: '10.0.0.2' };

/** A 64-byte UDP datagram to port 53, cut into two fragments of 32 bytes each. */
function fragments(id: number, dport: number): Buffer[] {
  const dgram = udp4(IP, { sport: 5353, dport, payload: Buffer.alloc(56, id) });
  return [
    eth(L2, ipv4({ ...IP, proto: IPPROTO_UDP, id, df: false, mf: true }, dgram.subarray(0, 32))),
    eth(L2, ipv4({ ...IP, proto: IPPROTO_UDP, id, df: false, fragOffset: 4 }, dgram.subarray(32))),
  ];
}

function udp(n: number, dport = 2000, more: Partial<Parameters<typeof ipv4>[0]> = {}): Buffer {
  return eth(
    L2,
    ipv4(
      { ...IP, proto: IPPROTO_UDP, id: n, ...more },
      udp4(IP, { sport: 1000 + n, dport, payload: Buffer.from(`frag-${n}`) }),
    ),
  );
}

const header = Buffer.concat([mac(L2.dst), mac(L2.src), Buffer.from([0x08, 0x00])]);

function malformed(): Buffer[] {
  const good = udp(30);
  // Ethernet header + the first 10 bytes of the IPv4 header, no padding.
  const truncated = Buffer.from(good.subarray(0, 24));
  // Total length 200 in a 60-byte frame (header checksum recomputed to match).
  const longLen = eth(
    L2,
    ipv4(
      { ...IP, proto: IPPROTO_UDP, id: 31, totalLength: 200 },
      udp4(IP, { sport: 1031, dport: 2000, payload: Buffer.from('len') }),
    ),
  );
  // Header length field 4 (16 bytes), below the minimum of 5.
  const badIhl = Buffer.from(udp(32));
  badIhl[14] = 0x44;
  // Wrong header checksum.
  const badSum = udp(33, 53, { checksum: 0x1234 });
  return [truncated, longLen, badIhl, badSum, header, header.subarray(0, 10)];
}

export const scenario: OracleScenario = {
  name: 'frag-malformed',
  summary:
    'nw_frag no/yes/first/later/not_later, ports of first vs later fragments, IPv4 options, ' +
    'malformed IPv4, runts',
  config: configOf('frag-malformed'),
  inputs: () => [
    {
      port: 'p1',
      frames: [
        ...fragments(1, 53), // M13 (first: its ports read as 0), M14 (later)
        ...fragments(2, 54), // M13, M14
        udp(3, 53), // not a fragment: M21
        udp(4), // M23
        udp(5, 53, { options: Buffer.from([0x94, 0x04, 0x00, 0x00]) }), // router alert option: M21
        // M14
        eth(L2, ipv4({ ...IP, proto: 99, id: 6, df: false, fragOffset: 100 }, Buffer.alloc(8))),
        ...malformed(),
      ],
    },
  ],
  expect: { ports: { p2: 5, p3: 8 }, skippedShort: 1 },
  notes: ['one 10-byte frame is skipped by the oracle; dvrlab must count it as read and dropped'],
  check: (out) => {
    // Fragments: ports read as 0 even in the first one, so no M11.
    assertMarkers(out, 'p2', [0x13, 0x14, 0x13, 0x14, 0x14]);
    // Malformed IPv4 still matches `ip,nw_frag=no`, with the addresses unparsed (M22).
    assertMarkers(out, 'p3', [0x21, 0x23, 0x21, 0x22, 0x22, 0x22, 0x21, 0x22]);
    assert.equal(out.p3?.[3]?.length, 24, 'the truncated frame is forwarded as it came');
    assert.equal(out.p3?.[7]?.length, 14, 'the 14-byte frame is forwarded as 14 bytes');
  },
};
