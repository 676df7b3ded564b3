/**
 * Frames and captures for `npm run bench`: synthetic UDP workloads of any size and number of
 * flows, VXLAN-encapsulated copies of them, variants of the seed's demo frames, and a pcap
 * writer that builds the whole file in one buffer (a million frames in a second or two).
 */
import { writeFileSync } from 'node:fs';
import { inetChecksum, udpFrame, vxlanFrame } from '../src/packets.js';

/** The Ethernet addresses of the synthetic traffic. */
export const SRC_MAC = '02:00:00:00:00:01';
export const DST_MAC = '02:00:00:00:00:02';

/** An IPv4 address as a dotted string. */
export function ipString(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The base of the destinations: flow i goes to 11.0.0.1 + i. */
export const DST_BASE = 0x0b000001;

/** The IPv4 header checksum of the 20 bytes at `at`, written in place. */
function fixIpv4Checksum(f: Buffer, at: number): void {
  f.writeUInt16BE(0, at + 10);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += f.readUInt16BE(at + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  f.writeUInt16BE(~sum & 0xffff, at + 10);
}

/**
 * `count` UDP frames of `size` bytes (as captured, without FCS; at least 60) to `flows`
 * destinations, one after the other round robin: frame k goes to 11.0.0.1 + (k % flows),
 * from 10.0.0.1:1000 to port 2000. The UDP checksum is 0 ("none", RFC 768), so only the
 * IPv4 header checksum changes from one destination to the next.
 */
export function udpFrames(count: number, flows: number, size: number): Buffer[] {
  const payload = Math.max(60, size) - 14 - 20 - 8;
  const template = udpFrame(
    { src: SRC_MAC, dst: DST_MAC },
    { src: '10.0.0.1', dst: ipString(DST_BASE), df: false },
    { sport: 1000, dport: 2000, payload: Buffer.alloc(payload), checksum: false },
  );
  const out: Buffer[] = [];
  for (let k = 0; k < count; k++) {
    const f = Buffer.from(template);
    f.writeUInt32BE((DST_BASE + (k % flows)) >>> 0, 30);
    fixIpv4Checksum(f, 14);
    out.push(f);
  }
  return out;
}

/** The underlay of the one-node VXLAN scenarios (br-phy, its NIC eth0, the remote VTEP). */
export const UNDERLAY = {
  localIp: '192.168.1.12',
  localMac: 'aa:55:aa:55:00:12',
  remoteIp: '192.168.1.13',
  remoteMac: 'aa:bb:cc:00:00:13',
  vni: 0x42,
};

/** `inner` frames as the remote VTEP sends them to br-phy: Ethernet/IPv4/UDP 4789/VXLAN. */
export function vxlanFrames(inner: Buffer[]): Buffer[] {
  return inner.map((f, k) =>
    vxlanFrame(
      {
        outerSrcMac: UNDERLAY.remoteMac,
        outerDstMac: UNDERLAY.localMac,
        outerSrc: UNDERLAY.remoteIp,
        outerDst: UNDERLAY.localIp,
        sport: 49152 + (k % 16),
        vni: UNDERLAY.vni,
      },
      f,
    ),
  );
}

/**
 * A copy of an IPv4 ICMP echo or UDP frame (20-byte IP header) made a distinct flow `k`: the
 * ICMP identifier, or the UDP source port, plus `k`, with the L4 checksum computed again.
 * Other frames (ARP) are returned as they are.
 */
export function flowVariant(frame: Buffer, k: number): Buffer {
  if (frame.readUInt16BE(12) !== 0x0800 || (frame[14]! & 0x0f) !== 5) return frame;
  const f = Buffer.from(frame);
  const l4 = 34;
  const proto = f[23];
  if (proto === 1) {
    f.writeUInt16BE((f.readUInt16BE(l4 + 4) + k) & 0xffff, l4 + 4);
    f.writeUInt16BE(0, l4 + 2);
    f.writeUInt16BE(inetChecksum(f.subarray(l4)), l4 + 2);
  } else if (proto === 17) {
    f.writeUInt16BE((f.readUInt16BE(l4) + k) & 0xffff, l4);
    f.writeUInt16BE(0, l4 + 6);
    const len = f.readUInt16BE(l4 + 4);
    const pseudo = Buffer.alloc(12);
    f.copy(pseudo, 0, 26, 34);
    pseudo[9] = 17;
    pseudo.writeUInt16BE(len, 10);
    const c = inetChecksum(pseudo, f.subarray(l4, l4 + len));
    f.writeUInt16BE(c === 0 ? 0xffff : c, l4 + 6);
  }
  return f;
}

/**
 * Writes a classic µs pcap; frame k gets timestamp `start + k` µs, so that captures written
 * with interleaved starts merge in a chosen order.
 */
export function writeFrames(path: string, frames: Buffer[], start: (k: number) => number): void {
  let size = 24;
  for (const f of frames) size += 16 + f.length;
  const b = Buffer.allocUnsafe(size);
  b.writeUInt32LE(0xa1b2c3d4, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeUInt32LE(0, 8);
  b.writeUInt32LE(0, 12);
  b.writeUInt32LE(262144, 16);
  b.writeUInt32LE(1, 20);
  let at = 24;
  frames.forEach((f, k) => {
    const us = 1_000_000 + start(k);
    b.writeUInt32LE(Math.floor(us / 1e6), at);
    b.writeUInt32LE(us % 1e6, at + 4);
    b.writeUInt32LE(f.length, at + 8);
    b.writeUInt32LE(f.length, at + 12);
    f.copy(b, at + 16);
    at += 16 + f.length;
  });
  writeFileSync(path, b);
}
