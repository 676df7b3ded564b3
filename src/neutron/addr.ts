/**
 * Address arithmetic for the Neutron compiler: IPv4 and IPv6 addresses as bigints, prefixes,
 * the text forms Neutron and the kernel print, EUI-64 addresses, and the deterministic
 * identifiers (UUIDs, MACs, cookies) the compiler picks when a topology leaves them out.
 *
 * Invariants: every function here is pure; the default identifiers depend only on their seed
 * string, so compiling the same topology twice gives byte-identical output. IPv6 addresses are
 * printed as RFC 5952 says (lower case, the longest run of two or more zero groups shortened to
 * `::`), which is how netaddr (Neutron), iproute2 and ovs-ofctl print them.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';

/** An address of either family, as a number. */
export interface Ip {
  family: 4 | 6;
  value: bigint;
}

/** A prefix: an address (host bits may be set, as in `10.0.0.1/26`) and a length. */
export interface Prefix {
  ip: Ip;
  len: number;
}

/** The width of an address family in bits. */
export function bits(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

/** Parses an IPv4 or IPv6 address; undefined when it is neither. */
export function parseIp(text: string): Ip | undefined {
  const family = isIP(text);
  if (family === 4) {
    const v = text.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
    return { family: 4, value: v };
  }
  if (family === 6) return { family: 6, value: parseIpv6(text) };
  return undefined;
}

/** Parses an address and throws on a bad one (for values already validated). */
export function ip(text: string): Ip {
  const r = parseIp(text);
  if (!r) throw new Error(`not an IP address: ${text}`);
  return r;
}

function parseIpv6(text: string): bigint {
  let s = text;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = ip(v4[1]).value;
    s = `${s.slice(0, v4.index)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** Prints an address: dotted quad, or RFC 5952 text for IPv6. */
export function formatIp(a: Ip): string {
  if (a.family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => Number((a.value >> s) & 0xffn)).join('.');
  }
  const groups = Array.from({ length: 8 }, (_, i) =>
    Number((a.value >> BigInt(112 - 16 * i)) & 0xffffn),
  );
  // The longest run of at least two zero groups (the first one on a tie) becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Re-prints an address in canonical form (`FDA0:0::1` → `fda0::1`). */
export function canonicalIp(text: string): string {
  return formatIp(ip(text));
}

/** Parses `ADDR/LEN`; undefined when malformed. */
export function parsePrefix(text: string): Prefix | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const a = parseIp(m[1]);
  const len = Number(m[2]);
  if (!a || len > bits(a.family)) return undefined;
  return { ip: a, len };
}

/** The netmask of a prefix length as a number. */
function mask(family: 4 | 6, len: number): bigint {
  const w = BigInt(bits(family));
  return ((1n << w) - 1n) ^ ((1n << (w - BigInt(len))) - 1n);
}

/** The network address of a prefix (host bits cleared). */
export function network(p: Prefix): Ip {
  return { family: p.ip.family, value: p.ip.value & mask(p.ip.family, p.len) };
}

/** The last address of a prefix (the IPv4 broadcast address). */
export function lastAddress(p: Prefix): Ip {
  const m = mask(p.ip.family, p.len);
  const all = (1n << BigInt(bits(p.ip.family))) - 1n;
  return { family: p.ip.family, value: (p.ip.value & m) | (all ^ m) };
}

/** True when `a` lies inside prefix `p` (same family). */
export function contains(p: Prefix, a: Ip): boolean {
  return a.family === p.ip.family && (a.value & mask(a.family, p.len)) === network(p).value;
}

/** True when two prefixes of the same family share an address. */
export function overlaps(a: Prefix, b: Prefix): boolean {
  if (a.ip.family !== b.ip.family) return false;
  const len = Math.min(a.len, b.len);
  const m = mask(a.ip.family, len);
  return (a.ip.value & m) === (b.ip.value & m);
}

/** Prints the network of a prefix as `10.0.0.0/26`. */
export function formatNetwork(p: Prefix): string {
  return `${formatIp(network(p))}/${p.len}`;
}

/** The address `n` steps after `a`. */
export function addIp(a: Ip, n: bigint): Ip {
  return { family: a.family, value: a.value + n };
}

/** The IPv6 address of `mac` in a /64 prefix by modified EUI-64 (RFC 4291 appendix A). */
export function eui64(prefix: Prefix, mac: string): Ip {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  b[0] ^= 0x02;
  const iid = [b[0], b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]].reduce(
    (acc, x) => (acc << 8n) | BigInt(x),
    0n,
  );
  return { family: 6, value: network(prefix).value | iid };
}

/** The link-local IPv6 address of a MAC (fe80::/64 plus its EUI-64 interface id). */
export function linkLocal(mac: string): Ip {
  return eui64({ ip: ip('fe80::'), len: 64 }, mac);
}

/** An IPv4 address as an unsigned integer (Neutron numbers its policy-routing tables so). */
export function ipv4Int(text: string): number {
  return Number(ip(text).value);
}

/** A MAC in lower case with two hex digits per byte. */
export function canonicalMac(text: string): string {
  return text
    .split(':')
    .map((x) => x.toLowerCase().padStart(2, '0'))
    .join(':');
}

/** A MAC as the `0x...` number ovs-ofctl prints in `load:` actions (no leading zeros). */
export function macHex(mac: string): string {
  return `0x${BigInt(`0x${mac.replace(/:/g, '')}`).toString(16)}`;
}

/** An IPv4 address as the `0x...` number ovs-ofctl prints in `load:` actions. */
export function ipv4Hex(text: string): string {
  return `0x${ip(text).value.toString(16)}`;
}

/** `n` pseudo-random bytes that depend only on `seed`. */
export function seededBytes(seed: string, n: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; out.length * 32 < n; i++) {
    out.push(createHash('sha256').update(`${seed}\u0000${i}`).digest());
  }
  return Buffer.concat(out).subarray(0, n);
}

/** A version-4-shaped UUID that depends only on `seed`. */
export function seededUuid(seed: string): string {
  const b = seededBytes(`uuid:${seed}`, 16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A MAC whose first three bytes are `prefix` and whose other bytes depend only on `seed`. */
export function seededMac(prefix: string, seed: string): string {
  const b = seededBytes(`mac:${seed}`, 3);
  // Neutron's DVR base MAC keeps a non-zero fourth byte.
  if (b[0] === 0) b[0] = 1;
  return `${prefix}:${[...b].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
}

/** A locally administered unicast MAC (as the kernel gives a veth) that depends on `seed`. */
export function seededLocalMac(seed: string): string {
  const b = seededBytes(`veth:${seed}`, 6);
  b[0] = (b[0] & 0xfc) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** A 64-bit flow cookie, as `0x` and 16 hex digits, that depends only on `seed`. */
export function seededCookie(seed: string): string {
  return `0x${seededBytes(`cookie:${seed}`, 8).toString('hex')}`;
}
