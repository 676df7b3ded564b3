/**
 * Packet builders and a classic-pcap reader/writer for the differential tests: the builders
 * live in src/packets.ts (the demo uses them too) and are re-exported here, next to what
 * only tests need (a seeded generator and checksum verification).
 */
import {
  ETH_IPV4,
  ETH_IPV6,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  inetChecksum,
} from '../../src/packets.js';

export * from '../../src/packets.js';

/** A small deterministic generator (mulberry32) for payload bytes. */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256);
    return b;
  }
}

/** Checksum verdicts for one frame, for checks on rewritten output. */
export interface ChecksumReport {
  ipHeader?: boolean; // IPv4 header checksum verifies
  l4?: boolean; // TCP / UDP / ICMP / ICMPv6 checksum verifies (UDP 0 counts as valid)
  udpZero?: boolean; // a UDP checksum of 0 ("none")
  l4Proto?: number;
}

/**
 * Verifies the IPv4 header checksum and the transport checksum of an untagged or
 * single-tagged Ethernet frame (no IPv6 extension headers, unfragmented).
 */
export function verifyChecksums(f: Buffer): ChecksumReport {
  let off = 12;
  if (f.length >= 18 && f.readUInt16BE(12) === 0x8100) off = 16;
  if (f.length < off + 2) return {};
  const type = f.readUInt16BE(off);
  const l3 = off + 2;
  const out: ChecksumReport = {};
  let l4: Buffer;
  let pseudo: Buffer;
  let proto: number;
  if (type === ETH_IPV4 && f.length >= l3 + 20) {
    const ihl = ((f[l3] as number) & 15) * 4;
    const total = f.readUInt16BE(l3 + 2);
    out.ipHeader = inetChecksum(f.subarray(l3, l3 + ihl)) === 0;
    proto = f[l3 + 9] as number;
    l4 = f.subarray(l3 + ihl, l3 + total);
    pseudo = Buffer.alloc(12);
    f.copy(pseudo, 0, l3 + 12, l3 + 20);
    pseudo[9] = proto;
    pseudo.writeUInt16BE(l4.length, 10);
  } else if (type === ETH_IPV6 && f.length >= l3 + 40) {
    proto = f[l3 + 6] as number;
    l4 = f.subarray(l3 + 40, l3 + 40 + f.readUInt16BE(l3 + 4));
    pseudo = Buffer.alloc(40);
    f.copy(pseudo, 0, l3 + 8, l3 + 40);
    pseudo.writeUInt32BE(l4.length, 32);
    pseudo[39] = proto;
  } else {
    return out;
  }
  out.l4Proto = proto;
  if (proto === IPPROTO_UDP && l4.length >= 8 && l4.readUInt16BE(6) === 0) {
    out.udpZero = true;
    out.l4 = true;
  } else if (proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_ICMPV6) {
    out.l4 = inetChecksum(pseudo, l4) === 0;
  } else if (proto === IPPROTO_ICMP) {
    out.l4 = inetChecksum(l4) === 0;
  }
  return out;
}
