/**
 * Frame builders and a classic-pcap reader/writer: what `dvrlab demo` uses to write its
 * capture, and what the tests use to drive Open vSwitch and dvrlab with the same inputs.
 *
 * Every builder is a pure function of its arguments: the same call gives the same bytes.
 * Checksums are correct by default (IPv4 header, TCP, UDP, ICMP, ICMPv6 with the
 * pseudo-header). Builders that make malformed packets on purpose say so in their options
 * (`checksum: 0`, `totalLength`, ...): a test must be able to send what a broken host would
 * send.
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** Parses `aa:bb:cc:dd:ee:ff` into 6 bytes. */
export function mac(text: string): Buffer {
  const parts = text.split(':');
  if (parts.length !== 6) throw new Error(`bad MAC address "${text}"`);
  return Buffer.from(parts.map((p) => parseHexByte(p, text)));
}

function parseHexByte(p: string, whole: string): number {
  const v = Number.parseInt(p, 16);
  if (!/^[0-9a-fA-F]{1,2}$/.test(p) || Number.isNaN(v)) {
    throw new Error(`bad byte "${p}" in "${whole}"`);
  }
  return v;
}

/** Parses a dotted-quad IPv4 address into 4 bytes. */
export function ip4(text: string): Buffer {
  const parts = text.split('.').map(Number);
  if (parts.length !== 4 || parts.some((n) => !Number.isInteger(n) || n < 0 || n > 255)) {
    throw new Error(`bad IPv4 address "${text}"`);
  }
  return Buffer.from(parts);
}

/** Parses an IPv6 address (with `::` compression, no embedded IPv4) into 16 bytes. */
export function ip6(text: string): Buffer {
  const halves = text.split('::');
  if (halves.length > 2) throw new Error(`bad IPv6 address "${text}"`);
  const groups = (s: string): number[] =>
    s === ''
      ? []
      : s.split(':').map((g) => {
          if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new Error(`bad IPv6 address "${text}"`);
          return Number.parseInt(g, 16);
        });
  const head = groups(halves[0] ?? '');
  const tail = halves.length === 2 ? groups(halves[1] ?? '') : [];
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 1 && fill !== 0) || fill < 0) {
    throw new Error(`bad IPv6 address "${text}"`);
  }
  const all = [...head, ...new Array<number>(fill).fill(0), ...tail];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** The Internet checksum (RFC 1071) of the concatenation of `parts`. */
export function inetChecksum(...parts: Buffer[]): number {
  let sum = 0;
  let odd: number | null = null;
  for (const part of parts) {
    for (const byte of part) {
      if (odd === null) {
        odd = byte;
      } else {
        sum += (odd << 8) | byte;
        odd = null;
      }
    }
  }
  if (odd !== null) sum += odd << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** A 802.1Q / 802.1ad tag, outermost first in `EthOpts.vlans`. */
export interface VlanTag {
  vid: number;
  pcp?: number;
  dei?: boolean;
  tpid?: number; // 0x8100 (default) or 0x88a8 for an 802.1ad service tag
}

export interface EthOpts {
  dst: string;
  src: string;
  type: number; // EtherType of the payload, after any VLAN tags
  vlans?: VlanTag[];
  pad?: boolean; // pad to the 60-byte Ethernet minimum (default true)
}

/** An Ethernet frame with optional VLAN tags around `payload`. */
export function eth(opts: EthOpts, payload: Buffer): Buffer {
  const parts: Buffer[] = [mac(opts.dst), mac(opts.src)];
  for (const tag of opts.vlans ?? []) {
    const b = Buffer.alloc(4);
    b.writeUInt16BE(tag.tpid ?? 0x8100, 0);
    b.writeUInt16BE(((tag.pcp ?? 0) << 13) | (tag.dei ? 0x1000 : 0) | (tag.vid & 0xfff), 2);
    parts.push(b);
  }
  const type = Buffer.alloc(2);
  type.writeUInt16BE(opts.type, 0);
  parts.push(type, payload);
  const frame = Buffer.concat(parts);
  if ((opts.pad ?? true) && frame.length < 60) {
    return Buffer.concat([frame, Buffer.alloc(60 - frame.length)]);
  }
  return frame;
}

export const ETH_IPV4 = 0x0800;
export const ETH_ARP = 0x0806;
export const ETH_IPV6 = 0x86dd;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

export interface ArpOpts {
  op: number; // 1 request, 2 reply
  sha: string;
  spa: string;
  tha: string;
  tpa: string;
}

/** An Ethernet/IPv4 ARP packet body (28 bytes). */
export function arp(o: ArpOpts): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16BE(1, 0); // hardware type Ethernet
  b.writeUInt16BE(ETH_IPV4, 2);
  b[4] = 6;
  b[5] = 4;
  b.writeUInt16BE(o.op, 6);
  return Buffer.concat([b, mac(o.sha), ip4(o.spa), mac(o.tha), ip4(o.tpa)]);
}

export interface Ipv4Opts {
  src: string;
  dst: string;
  proto: number;
  ttl?: number; // default 64
  tos?: number; // the whole byte: DSCP << 2 | ECN
  id?: number;
  df?: boolean; // default true
  mf?: boolean;
  fragOffset?: number; // in 8-byte units
  options?: Buffer; // padded with zeros to a multiple of 4 bytes
  totalLength?: number; // override (for malformed packets)
  checksum?: number; // override the header checksum
}

/** An IPv4 header (with options) followed by `payload`. */
export function ipv4(o: Ipv4Opts, payload: Buffer): Buffer {
  const opt = o.options ?? Buffer.alloc(0);
  const optLen = Math.ceil(opt.length / 4) * 4;
  const hlen = 20 + optLen;
  const h = Buffer.alloc(hlen);
  h[0] = 0x40 | (hlen / 4);
  h[1] = o.tos ?? 0;
  h.writeUInt16BE(o.totalLength ?? hlen + payload.length, 2);
  h.writeUInt16BE(o.id ?? 0, 4);
  const flags = ((o.df ?? true) ? 0x4000 : 0) | (o.mf ? 0x2000 : 0);
  h.writeUInt16BE(flags | ((o.fragOffset ?? 0) & 0x1fff), 6);
  h[8] = o.ttl ?? 64;
  h[9] = o.proto;
  ip4(o.src).copy(h, 12);
  ip4(o.dst).copy(h, 16);
  opt.copy(h, 20);
  h.writeUInt16BE(o.checksum ?? inetChecksum(h), 10);
  return Buffer.concat([h, payload]);
}

/** Addresses and protocol for a transport checksum's pseudo-header. */
export interface Pseudo {
  src: string;
  dst: string;
}

function pseudo4(p: Pseudo, proto: number, len: number): Buffer {
  const b = Buffer.alloc(12);
  ip4(p.src).copy(b, 0);
  ip4(p.dst).copy(b, 4);
  b[9] = proto;
  b.writeUInt16BE(len, 10);
  return b;
}

function pseudo6(p: Pseudo, proto: number, len: number): Buffer {
  const b = Buffer.alloc(40);
  ip6(p.src).copy(b, 0);
  ip6(p.dst).copy(b, 16);
  b.writeUInt32BE(len, 32);
  b[39] = proto;
  return b;
}

export interface UdpOpts {
  sport: number;
  dport: number;
  payload: Buffer;
  checksum?: boolean | number; // true (default): computed; false: 0; number: forced
}

function udpSegment(o: UdpOpts, pseudo: (len: number) => Buffer): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16BE(o.sport, 0);
  b.writeUInt16BE(o.dport, 2);
  b.writeUInt16BE(8 + o.payload.length, 4);
  const seg = Buffer.concat([b, o.payload]);
  const mode = o.checksum ?? true;
  if (typeof mode === 'number') {
    seg.writeUInt16BE(mode, 6);
  } else if (mode) {
    const c = inetChecksum(pseudo(seg.length), seg);
    // RFC 768: a computed checksum of zero is sent as all ones.
    seg.writeUInt16BE(c === 0 ? 0xffff : c, 6);
  }
  return seg;
}

/** A UDP datagram over IPv4. */
export function udp4(ip: Pseudo, o: UdpOpts): Buffer {
  return udpSegment(o, (len) => pseudo4(ip, IPPROTO_UDP, len));
}

/** A UDP datagram over IPv6 (the checksum is mandatory there). */
export function udp6(ip: Pseudo, o: UdpOpts): Buffer {
  return udpSegment(o, (len) => pseudo6(ip, IPPROTO_UDP, len));
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

export interface TcpOpts {
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  flags: number;
  window?: number;
  payload?: Buffer;
}

function tcpSegment(o: TcpOpts, pseudo: (len: number) => Buffer): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt16BE(o.sport, 0);
  b.writeUInt16BE(o.dport, 2);
  b.writeUInt32BE((o.seq ?? 0) >>> 0, 4);
  b.writeUInt32BE((o.ack ?? 0) >>> 0, 8);
  b[12] = 5 << 4;
  b[13] = o.flags;
  b.writeUInt16BE(o.window ?? 64240, 14);
  const seg = Buffer.concat([b, o.payload ?? Buffer.alloc(0)]);
  seg.writeUInt16BE(inetChecksum(pseudo(seg.length), seg), 16);
  return seg;
}

/** A TCP segment over IPv4 (no options). */
export function tcp4(ip: Pseudo, o: TcpOpts): Buffer {
  return tcpSegment(o, (len) => pseudo4(ip, IPPROTO_TCP, len));
}

/** A TCP segment over IPv6 (no options). */
export function tcp6(ip: Pseudo, o: TcpOpts): Buffer {
  return tcpSegment(o, (len) => pseudo6(ip, IPPROTO_TCP, len));
}

export interface IcmpOpts {
  type: number;
  code?: number;
  rest?: number; // the 32-bit "rest of header" (id << 16 | seq for echo)
  payload?: Buffer;
}

/** An ICMPv4 message. */
export function icmp4(o: IcmpOpts): Buffer {
  const b = Buffer.alloc(8);
  b[0] = o.type;
  b[1] = o.code ?? 0;
  b.writeUInt32BE((o.rest ?? 0) >>> 0, 4);
  const msg = Buffer.concat([b, o.payload ?? Buffer.alloc(0)]);
  msg.writeUInt16BE(inetChecksum(msg), 2);
  return msg;
}

/** An ICMPv6 message; its checksum covers the IPv6 pseudo-header. */
export function icmp6(ip: Pseudo, o: IcmpOpts): Buffer {
  const b = Buffer.alloc(8);
  b[0] = o.type;
  b[1] = o.code ?? 0;
  b.writeUInt32BE((o.rest ?? 0) >>> 0, 4);
  const msg = Buffer.concat([b, o.payload ?? Buffer.alloc(0)]);
  msg.writeUInt16BE(inetChecksum(pseudo6(ip, IPPROTO_ICMPV6, msg.length), msg), 2);
  return msg;
}

/** An IPv6 extension header: `data` is everything after next-header and length. */
export interface Ipv6Ext {
  type: number; // 0 hop-by-hop, 43 routing, 44 fragment, 60 destination options
  data: Buffer;
}

export interface Ipv6Opts {
  src: string;
  dst: string;
  nextHeader: number; // protocol of the payload after the extension headers
  hopLimit?: number; // default 64
  tclass?: number;
  flowLabel?: number;
  ext?: Ipv6Ext[];
}

/** An IPv6 header, extension headers in order, then `payload`. */
export function ipv6(o: Ipv6Opts, payload: Buffer): Buffer {
  const exts = o.ext ?? [];
  const extBufs: Buffer[] = exts.map((e, i) => {
    const next = i + 1 < exts.length ? (exts[i + 1] as Ipv6Ext).type : o.nextHeader;
    if (e.type === 44) {
      // The fragment header has a fixed size of 8 and a reserved byte, not a length.
      const b = Buffer.alloc(8);
      b[0] = next;
      e.data.copy(b, 2, 0, 6);
      return b;
    }
    const total = Math.ceil((e.data.length + 2) / 8) * 8;
    const b = Buffer.alloc(total);
    b[0] = next;
    b[1] = total / 8 - 1;
    e.data.copy(b, 2);
    return b;
  });
  const rest = Buffer.concat([...extBufs, payload]);
  const h = Buffer.alloc(40);
  h.writeUInt32BE(((6 << 28) | ((o.tclass ?? 0) << 20) | ((o.flowLabel ?? 0) & 0xfffff)) >>> 0, 0);
  h.writeUInt16BE(rest.length, 4);
  h[6] = exts.length > 0 ? (exts[0] as Ipv6Ext).type : o.nextHeader;
  h[7] = o.hopLimit ?? 64;
  ip6(o.src).copy(h, 8);
  ip6(o.dst).copy(h, 24);
  return Buffer.concat([h, rest]);
}

/** Data for an IPv6 fragment extension header (offset in 8-byte units). */
export function ipv6FragData(offset: number, more: boolean, id: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt16BE(((offset & 0x1fff) << 3) | (more ? 1 : 0), 0);
  b.writeUInt32BE(id >>> 0, 2);
  return b;
}

/** A VXLAN header (RFC 7348: flags 0x08 = "VNI valid") followed by the inner frame. */
export function vxlan(vni: number, inner: Buffer, flags = 0x08): Buffer {
  const b = Buffer.alloc(8);
  b[0] = flags;
  b.writeUInt32BE((vni << 8) >>> 0, 4);
  return Buffer.concat([b, inner]);
}

export interface VxlanFrameOpts {
  outerSrcMac: string;
  outerDstMac: string;
  outerSrc: string;
  outerDst: string;
  sport: number;
  dport?: number; // default 4789
  vni: number;
  udpChecksum?: boolean; // default false: VXLAN senders usually leave it 0
  ttl?: number;
}

/** A complete underlay frame: Ethernet / IPv4 (DF) / UDP / VXLAN / inner frame. */
export function vxlanFrame(o: VxlanFrameOpts, inner: Buffer): Buffer {
  const ip = { src: o.outerSrc, dst: o.outerDst };
  const seg = udp4(ip, {
    sport: o.sport,
    dport: o.dport ?? 4789,
    payload: vxlan(o.vni, inner),
    checksum: o.udpChecksum ?? false,
  });
  return eth(
    { dst: o.outerDstMac, src: o.outerSrcMac, type: ETH_IPV4 },
    ipv4({ ...ip, proto: IPPROTO_UDP, ttl: o.ttl ?? 64 }, seg),
  );
}

/** Convenience: Ethernet / IPv4 / UDP with a correct UDP checksum. */
export function udpFrame(
  l2: { src: string; dst: string; vlans?: VlanTag[] },
  l3: Omit<Ipv4Opts, 'proto'>,
  l4: UdpOpts,
): Buffer {
  return eth({ ...l2, type: ETH_IPV4 }, ipv4({ ...l3, proto: IPPROTO_UDP }, udp4(l3, l4)));
}

/** Convenience: Ethernet / IPv4 / TCP. */
export function tcpFrame(
  l2: { src: string; dst: string; vlans?: VlanTag[] },
  l3: Omit<Ipv4Opts, 'proto'>,
  l4: TcpOpts,
): Buffer {
  return eth({ ...l2, type: ETH_IPV4 }, ipv4({ ...l3, proto: IPPROTO_TCP }, tcp4(l3, l4)));
}

/** Convenience: Ethernet / IPv4 / ICMP. */
export function icmpFrame(
  l2: { src: string; dst: string; vlans?: VlanTag[] },
  l3: Omit<Ipv4Opts, 'proto'>,
  l4: IcmpOpts,
): Buffer {
  return eth({ ...l2, type: ETH_IPV4 }, ipv4({ ...l3, proto: IPPROTO_ICMP }, icmp4(l4)));
}

/** One captured frame: time in microseconds since the epoch, and the bytes. */
export interface PcapRecord {
  tsUsec: bigint;
  data: Buffer;
}

/** Writes a classic little-endian µs pcap (linktype 1, snaplen 262144). */
export function writePcap(path: string, records: PcapRecord[]): void {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(1, 20);
  const parts: Buffer[] = [header];
  for (const r of records) {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(Number(r.tsUsec / 1000000n), 0);
    h.writeUInt32LE(Number(r.tsUsec % 1000000n), 4);
    h.writeUInt32LE(r.data.length, 8);
    h.writeUInt32LE(r.data.length, 12);
    parts.push(h, r.data);
  }
  writeFileSync(path, Buffer.concat(parts));
}

/**
 * Reads a classic pcap in either byte order, with µs or ns timestamps. Throws on
 * anything else (pcapng, a truncated record), naming the file.
 */
export function readPcap(path: string): PcapRecord[] {
  const d = readFileSync(path);
  if (d.length < 24) throw new Error(`${path}: too short for a pcap header`);
  const magicLE = d.readUInt32LE(0);
  let le: boolean;
  let nsec: boolean;
  if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) {
    le = true;
    nsec = magicLE === 0xa1b23c4d;
  } else {
    const magicBE = d.readUInt32BE(0);
    if (magicBE !== 0xa1b2c3d4 && magicBE !== 0xa1b23c4d) {
      throw new Error(`${path}: not a classic pcap (magic 0x${magicLE.toString(16)})`);
    }
    le = false;
    nsec = magicBE === 0xa1b23c4d;
  }
  const u32 = (off: number): number => (le ? d.readUInt32LE(off) : d.readUInt32BE(off));
  const out: PcapRecord[] = [];
  let off = 24;
  while (off < d.length) {
    if (off + 16 > d.length) throw new Error(`${path}: truncated record header at ${off}`);
    const sec = BigInt(u32(off));
    const frac = BigInt(u32(off + 4));
    const caplen = u32(off + 8);
    if (off + 16 + caplen > d.length) throw new Error(`${path}: truncated record at ${off}`);
    out.push({
      tsUsec: sec * 1000000n + (nsec ? frac / 1000n : frac),
      data: Buffer.from(d.subarray(off + 16, off + 16 + caplen)),
    });
    off += 16 + caplen;
  }
  return out;
}
