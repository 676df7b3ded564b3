/**
 * Differential runner: one scenario through real Open vSwitch 3.1 (the shared
 * `tools/ovs-oracle`) and through `dvrlab replay`, then a port-by-port comparison.
 *
 * Invariants the comparison relies on:
 * - Both sides get the very same input files. Input k is re-timed to start 1 s after
 *   input k-1, so dvrlab's timestamp merge and the oracle's one-input-after-another
 *   replay give the same order.
 * - Ports are named the dvrlab way (`port`, or `bridge` for a LOCAL port); a port
 *   "emitted" when its pcap holds at least one frame.
 * - Frames are compared byte for byte, except in VXLAN underlay frames, where the outer
 *   UDP source port, outer IPv4 identification and the outer IPv4 and UDP checksums are
 *   zeroed on both sides first.
 * - Frames shorter than 14 bytes cannot be injected into OVS (the oracle skips them),
 *   so dvrlab must read them (`packets_in`) and drop them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readPcap, writePcap, type PcapRecord } from './packets.js';
import { canonicalActions } from './canonical.js';
import type { Locations, OracleScenario, PortFrames } from './scenario.js';

/** Time of the first input frame (µs); input k starts k seconds later (well inside every
 * conntrack and flow timeout, so time-based expiry plays no part in the comparison). */
const BASE_USEC = 1_700_000_000n * 1_000_000n;
const INPUT_SPACING_USEC = 1_000_000n;

/** The repository root: the nearest directory above this file with a package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'test', 'oracle'))) {
      return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root above ' + dir);
    dir = up;
  }
}

/**
 * The shared directory: `$DVRLAB_SHARED`, else `<repo>/../shared`, else `/work/shared`.
 * Returns the first that holds `tools/ovs-oracle`, or throws naming every place looked.
 */
export function locate(): Locations {
  const root = repoRoot();
  const candidates = [
    process.env.DVRLAB_SHARED,
    resolve(root, '..', 'shared'),
    '/work/shared',
  ].filter((c): c is string => typeof c === 'string' && c !== '');
  for (const c of candidates) {
    if (existsSync(join(c, 'tools', 'ovs-oracle'))) return { repoRoot: root, shared: c };
  }
  throw new Error(
    'the OVS oracle is missing: no tools/ovs-oracle under ' +
      candidates.join(', ') +
      ' (set DVRLAB_SHARED to the shared directory)',
  );
}

/** The bridges and ports of a scenario JSON, enough to name output files. */
interface ScenarioJson {
  bridges: {
    name: string;
    ports: { name: string; type?: string; options?: Record<string, string> }[];
  }[];
}

function loadScenarioJson(path: string): ScenarioJson {
  const j = JSON.parse(readFileSync(path, 'utf8')) as ScenarioJson;
  if (!Array.isArray(j.bridges)) throw new Error(`${path}: no "bridges" array`);
  return j;
}

/** UDP destination ports that carry VXLAN in this scenario (4789 plus any dst_port). */
export function vxlanPorts(s: ScenarioJson): Set<number> {
  const ports = new Set<number>([4789]);
  for (const b of s.bridges) {
    for (const p of b.ports) {
      const dp = p.options?.dst_port;
      if (p.type === 'vxlan' && dp !== undefined) ports.add(Number(dp));
    }
  }
  return ports;
}

/** Layer offsets of a frame, for normalising and for readable diffs. */
interface Layers {
  l3?: number;
  l4?: number;
  ethType?: number;
  proto?: number;
}

function layers(f: Buffer): Layers {
  if (f.length < 14) return {};
  let off = 12;
  let type = f.readUInt16BE(off);
  while ((type === 0x8100 || type === 0x88a8) && off + 6 <= f.length) {
    off += 4;
    type = f.readUInt16BE(off);
  }
  const l3 = off + 2;
  const out: Layers = { l3, ethType: type };
  if (type === 0x0800 && f.length >= l3 + 20) {
    const ihl = ((f[l3] as number) & 0x0f) * 4;
    out.proto = f[l3 + 9];
    const fragOff = f.readUInt16BE(l3 + 6) & 0x1fff;
    if (fragOff === 0 && ihl >= 20) out.l4 = l3 + ihl;
  } else if (type === 0x86dd && f.length >= l3 + 40) {
    out.proto = f[l3 + 6];
    out.l4 = l3 + 40;
  }
  return out;
}

/**
 * A copy of `f` with the fields that legitimately differ in VXLAN encapsulation
 * zeroed: outer IPv4 id and checksum, outer UDP source port and checksum.
 */
export function normaliseVxlan(f: Buffer, ports: Set<number>): Buffer {
  const l = layers(f);
  if (l.ethType !== 0x0800 || l.proto !== 17 || l.l3 === undefined || l.l4 === undefined) {
    return f;
  }
  if (f.length < l.l4 + 8 || !ports.has(f.readUInt16BE(l.l4 + 2))) return f;
  const g = Buffer.from(f);
  g.writeUInt16BE(0, l.l3 + 4);
  g.writeUInt16BE(0, l.l3 + 10);
  g.writeUInt16BE(0, l.l4);
  g.writeUInt16BE(0, l.l4 + 6);
  return g;
}

/** A one-line decode of a frame: MACs, tags, L3 and L4 summary with offsets. */
export function describe(f: Buffer): string {
  if (f.length < 14) return `runt (${f.length} bytes)`;
  const m = (o: number): string =>
    [...f.subarray(o, o + 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
  const parts = [`${f.length}B ${m(6)} > ${m(0)}`];
  let off = 12;
  let type = f.readUInt16BE(off);
  while ((type === 0x8100 || type === 0x88a8) && off + 6 <= f.length) {
    const tci = f.readUInt16BE(off + 2);
    parts.push(`tag(0x${type.toString(16)} vid=${tci & 0xfff} pcp=${tci >> 13})`);
    off += 4;
    type = f.readUInt16BE(off);
  }
  const l3 = off + 2;
  parts.push(`type=0x${type.toString(16).padStart(4, '0')} l3@${l3}`);
  if (type === 0x0800 && f.length >= l3 + 20) {
    const ip = (o: number): string => [...f.subarray(o, o + 4)].join('.');
    parts.push(
      `ipv4 ${ip(l3 + 12)} > ${ip(l3 + 16)} ihl=${(f[l3] as number) & 15} ` +
        `tos=0x${(f[l3 + 1] as number).toString(16)} len=${f.readUInt16BE(l3 + 2)} ` +
        `id=${f.readUInt16BE(l3 + 4)} frag=0x${f.readUInt16BE(l3 + 6).toString(16)} ` +
        `ttl=${f[l3 + 8]} proto=${f[l3 + 9]} csum=0x${f.readUInt16BE(l3 + 10).toString(16)}`,
    );
  } else if (type === 0x86dd && f.length >= l3 + 40) {
    parts.push(`ipv6 nh=${f[l3 + 6]} hlim=${f[l3 + 7]} plen=${f.readUInt16BE(l3 + 4)}`);
  } else if (type === 0x0806 && f.length >= l3 + 28) {
    parts.push(`arp op=${f.readUInt16BE(l3 + 6)}`);
  }
  const l = layers(f);
  if (l.l4 !== undefined && f.length >= l.l4 + 8) {
    const p = l.l4;
    if (l.proto === 6 || l.proto === 17) {
      const cs = l.proto === 6 ? p + 16 : p + 6;
      parts.push(
        `${l.proto === 6 ? 'tcp' : 'udp'}@${p} ${f.readUInt16BE(p)} > ${f.readUInt16BE(p + 2)}` +
          (f.length >= cs + 2 ? ` csum=0x${f.readUInt16BE(cs).toString(16)}` : ''),
      );
    } else if (l.proto === 1 || l.proto === 58) {
      parts.push(
        `icmp@${p} type=${f[p]} code=${f[p + 1]} csum=0x${f.readUInt16BE(p + 2).toString(16)}`,
      );
    }
  }
  return parts.join(' ');
}

/** Offset + hex of both frames, 16 bytes a row, only rows that differ (marked with ^^). */
export function hexDiff(a: Buffer, b: Buffer, labelA = 'ovs', labelB = 'dvrlab'): string {
  const lines = [`  ${labelA}:    ${describe(a)}`, `  ${labelB}: ${describe(b)}`];
  const n = Math.max(a.length, b.length);
  const hex = (f: Buffer, o: number): string[] => {
    const cells: string[] = [];
    for (let i = o; i < o + 16; i++)
      cells.push(i < f.length ? (f[i] as number).toString(16).padStart(2, '0') : '  ');
    return cells;
  };
  for (let o = 0; o < n; o += 16) {
    const ha = hex(a, o);
    const hb = hex(b, o);
    if (ha.join('') === hb.join('')) continue;
    const marks = ha.map((c, i) => (c === hb[i] ? '  ' : '^^'));
    const off = o.toString(16).padStart(4, '0');
    lines.push(`  ${off}  ${labelA.padEnd(6)} ${ha.join(' ')}`);
    lines.push(`  ${off}  ${labelB.padEnd(6)} ${hb.join(' ')}`);
    lines.push(`        ${''.padEnd(6)} ${marks.join(' ')}`);
  }
  return lines.join('\n');
}

/** Input files written for one run, in the order given to both tools. */
interface WrittenInput {
  port: string;
  data: Buffer[];
  file: string;
  frames: number;
  short: number;
}

function writeInputs(s: OracleScenario, loc: Locations, dir: string): WrittenInput[] {
  const out: WrittenInput[] = [];
  s.inputs(loc).forEach((spec, k) => {
    const data: Buffer[] =
      'frames' in spec ? spec.frames : readPcap(spec.pcap(loc)).map((r) => r.data);
    const start = BASE_USEC + BigInt(k) * INPUT_SPACING_USEC;
    const records: PcapRecord[] = data.map((d, i) => ({ tsUsec: start + BigInt(i), data: d }));
    const file = join(dir, `in${k}-${spec.port}.pcap`);
    writePcap(file, records);
    out.push({
      port: spec.port,
      data,
      file,
      frames: data.length,
      short: data.filter((d) => d.length < 14).length,
    });
  });
  return out;
}

/** What the oracle reported about one run. */
export interface OracleResult {
  out: PortFrames;
  packetsIn: number;
  skippedShort: number;
  stats: unknown;
  dir: string;
}

function runOracle(
  s: OracleScenario,
  loc: Locations,
  cfg: string,
  inputs: WrittenInput[],
  dir: string,
): OracleResult {
  const oracle = join(loc.shared, 'tools', 'ovs-oracle');
  const args = ['run', '--config', cfg];
  for (const i of inputs) args.push('--in', `${i.port}=${i.file}`);
  args.push('--out', dir, '--no-hex');
  const r = spawnSync(oracle, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.error !== undefined || r.status !== 0) {
    throw new Error(
      `[${s.name}] the OVS oracle failed ` +
        `(status ${r.status}, ${r.error?.message ?? 'no error'}):\n` +
        `${oracle} ${args.join(' ')}\n${(r.stderr ?? '').slice(-3000)}`,
    );
  }
  const sj = loadScenarioJson(cfg);
  const out: PortFrames = {};
  for (const b of sj.bridges) {
    const names: [string, string][] = [[`${b.name}-LOCAL.pcap`, b.name]];
    for (const p of b.ports) names.push([`${b.name}-${p.name}.pcap`, p.name]);
    for (const [file, name] of names) {
      const path = join(dir, file);
      if (!existsSync(path)) continue;
      const frames = readPcap(path).map((rec) => rec.data);
      if (frames.length > 0) out[name] = frames;
    }
  }
  const stats = JSON.parse(readFileSync(join(dir, 'stats.json'), 'utf8')) as {
    packets_in: number;
    inputs: { skipped_short: number }[];
  };
  const skippedShort = stats.inputs.reduce((n, i) => n + i.skipped_short, 0);
  return { out, packetsIn: stats.packets_in, skippedShort, stats, dir };
}

/** What dvrlab's replay reported. */
interface DvrlabResult {
  out: PortFrames;
  packetsIn: number;
  stats: Record<string, unknown>;
}

function runDvrlab(
  s: OracleScenario,
  loc: Locations,
  cfg: string,
  inputs: WrittenInput[],
  dir: string,
): DvrlabResult {
  const cli = join(loc.repoRoot, 'dist', 'src', 'cli.js');
  if (!existsSync(cli)) {
    throw new Error(
      `[${s.name}] dvrlab's CLI ${cli} does not exist: build it (tsc -p .), or set ` +
        'DVRLAB_ORACLE_ONLY=1 to check the scenarios against OVS alone',
    );
  }
  const args = [cli, 'replay', cfg];
  for (const i of inputs) args.push('--in', `${i.port}=${i.file}`);
  args.push('--out', dir);
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.error !== undefined || r.status !== 0) {
    throw new Error(
      `[${s.name}] dvrlab replay failed ` +
        `(status ${r.status}, ${r.error?.message ?? 'no error'}):\n` +
        `node ${args.join(' ')}\n${(r.stderr ?? '').slice(-3000)}`,
    );
  }
  const out: PortFrames = {};
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.pcap')) continue;
    const frames = readPcap(join(dir, f)).map((rec) => rec.data);
    if (frames.length > 0) out[f.slice(0, -'.pcap'.length)] = frames;
  }
  const statsPath = join(dir, 'stats.json');
  if (!existsSync(statsPath)) throw new Error(`[${s.name}] dvrlab wrote no ${statsPath}`);
  const stats = JSON.parse(readFileSync(statsPath, 'utf8')) as Record<string, unknown>;
  const packetsIn = stats.packets_in;
  if (typeof packetsIn !== 'number') {
    throw new Error(`[${s.name}] dvrlab's stats.json has no numeric packets_in`);
  }
  return { out, packetsIn, stats };
}

/** Asserts a scenario's expectations on one side's output. */
export function assertExpected(
  s: OracleScenario,
  side: string,
  out: PortFrames,
  inputs: Buffer[][],
): void {
  const ports = new Set([...Object.keys(s.expect.ports), ...Object.keys(out)]);
  for (const p of [...ports].sort()) {
    const want = s.expect.ports[p] ?? 0;
    const got = out[p]?.length ?? 0;
    assert.equal(
      got,
      want,
      `[${s.name}] ${side}: port ${p} emitted ${got} frame(s), the scenario expects ${want}` +
        (got > 0 ? `\n  first: ${describe(out[p]?.[0] as Buffer)}` : ''),
    );
  }
  if (s.check !== undefined) {
    try {
      s.check(out, inputs);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new Error(`[${s.name}] ${side}: scenario check failed: ${msg}`);
    }
  }
}

/** Compares dvrlab's output with the oracle's, port by port and frame by frame. */
export function compareOutputs(
  s: OracleScenario,
  vxPorts: Set<number>,
  ovs: PortFrames,
  dvr: PortFrames,
): void {
  const a = Object.keys(ovs).sort();
  const b = Object.keys(dvr).sort();
  assert.deepEqual(
    b,
    a,
    `[${s.name}] the ports that emitted differ: ovs [${a.join(', ')}], dvrlab [${b.join(', ')}]`,
  );
  for (const port of a) {
    const fa = ovs[port] as Buffer[];
    const fb = dvr[port] as Buffer[];
    const n = Math.max(fa.length, fb.length);
    for (let i = 0; i < n; i++) {
      const x = fa[i];
      const y = fb[i];
      if (x === undefined || y === undefined) {
        const extra = (x ?? y) as Buffer;
        throw new Error(
          `[${s.name}] port ${port}: ovs emitted ${fa.length} frame(s), dvrlab ${fb.length}; ` +
            `frame ${i} is only in ${x === undefined ? 'dvrlab' : 'ovs'}: ${describe(extra)}`,
        );
      }
      const nx = normaliseVxlan(x, vxPorts);
      const ny = normaliseVxlan(y, vxPorts);
      if (!nx.equals(ny)) {
        throw new Error(
          `[${s.name}] port ${port}, frame ${i} differs` +
            (nx !== x ? ' (VXLAN outer sport/id/checksums zeroed on both sides)' : '') +
            `:\n${hexDiff(nx, ny)}`,
        );
      }
    }
  }
}

/** Dump-flows lines without the volatile parts (duration, idle_age, hard_age). */
function scrubFlowLine(l: string): string {
  return l
    .replace(/ duration=[0-9.]+s,/, '')
    .replace(/ idle_age=\d+,/, '')
    .replace(/ hard_age=\d+,/, '')
    .trim();
}

/**
 * The OpenFlow rules with the counters the run produced: dvrlab's DIR/BRIDGE.flows against the
 * oracle's dump-flows.txt (`ovs-ofctl -O OpenFlow15 dump-flows`, after revalidation), bridge by
 * bridge, as sets of lines (OVS's order inside a mask group is its hash order).
 */
export function compareFlows(s: OracleScenario, ovsDir: string, dvrDir: string): void {
  const ovsText = readFileSync(join(ovsDir, 'dump-flows.txt'), 'utf8');
  const sections = ovsText.split(/^## bridge /m).slice(1);
  for (const sec of sections) {
    const [bridge, ...rest] = sec.split('\n');
    const want = rest
      .filter((l) => l.startsWith(' cookie='))
      .map(scrubFlowLine)
      .sort();
    const file = join(dvrDir, `${bridge!.trim()}.flows`);
    assert.ok(existsSync(file), `[${s.name}] dvrlab wrote no ${file}`);
    const got = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith(' cookie='))
      .map(scrubFlowLine)
      .sort();
    assert.deepEqual(got, want, `[${s.name}] bridge ${bridge}: flows and their counters differ`);
  }
}

/**
 * A dpctl -m line without the volatile parts (ufid, used, dp-extra-info), without the
 * conntrack original-tuple metadata (`ct_tuple4(...)`, which dvrlab's flow key does not
 * carry), and with its actions in canonical order.
 */
function scrubMegaflow(l: string): string {
  const line = l
    .replace(/^ufid:[0-9a-f-]+, /, '')
    .replace(/, used:(never|[0-9.]+s)/, '')
    .replace(/, dp-extra-info:.*$/, '')
    .replace(/ct_tuple[46]\([^)]*\),/, '')
    // Nor does it keep a decapsulated packet's outer TTL and UDP ports, which OVS's verbose
    // dump shows as wildcarded fields of tunnel(...).
    .replace(/,ttl=\d+\/0,tp_src=\d+\/0,tp_dst=\d+\/0/, '')
    .trim();
  const i = line.indexOf(', actions:');
  if (i < 0) return line;
  const vlan = /vlan\((vid=\d+,pcp=\d+)/.exec(line)?.[1];
  return `${line.slice(0, i)}, actions:${canonicalActions(line.slice(i + ', actions:'.length), vlan)}`;
}

/**
 * The megaflows left after the run (`dpctl/dump-flows -m`, with port names), against the
 * oracle's, as sets. The datapath port numbers of OVS change from run to run, names do not.
 */
export function compareMegaflows(
  s: OracleScenario,
  loc: Locations,
  cfg: string,
  inputs: WrittenInput[],
  ovsDir: string,
): void {
  const want = readFileSync(join(ovsDir, 'dpctl-flows-m.txt'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('ufid:'))
    .map(scrubMegaflow)
    .sort();
  const cli = join(loc.repoRoot, 'dist', 'src', 'cli.js');
  const args = [cli, 'dpctl', cfg, '-m'];
  for (const i of inputs) args.push('--in', `${i.port}=${i.file}`);
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `[${s.name}] dvrlab dpctl failed: ${r.stderr}`);
  const got = r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map(scrubMegaflow)
    .sort();
  assert.deepEqual(got, want, `[${s.name}] megaflows differ`);
}

export interface RunOptions {
  oracleOnly: boolean;
  keep?: boolean; // leave the temporary directory behind (for debugging)
}

export interface RunReport {
  scenario: string;
  dir: string;
  packetsIn: number;
  skippedShort: number;
  emitted: Record<string, number>;
  dvrlab?: { packetsIn: number; dropped: unknown };
}

/** Runs one scenario end to end; throws on the first difference or broken expectation. */
export function runScenario(s: OracleScenario, loc: Locations, opts: RunOptions): RunReport {
  const tmp = mkdtempSync(join(tmpdir(), `dvrlab-oracle-${s.name}-`));
  try {
    const cfg = s.config(loc);
    const inputs = writeInputs(s, loc, tmp);
    const totalFrames = inputs.reduce((n, i) => n + i.frames, 0);
    const totalShort = inputs.reduce((n, i) => n + i.short, 0);
    const ovsDir = join(tmp, 'ovs');
    const ovs = runOracle(s, loc, cfg, inputs, ovsDir);

    assert.equal(
      ovs.skippedShort,
      s.expect.skippedShort ?? 0,
      `[${s.name}] the oracle skipped ${ovs.skippedShort} frame(s) shorter than 14 bytes, ` +
        `the scenario expects ${s.expect.skippedShort ?? 0}`,
    );
    assert.equal(ovs.skippedShort, totalShort, `[${s.name}] oracle short-frame count`);
    assert.equal(
      ovs.packetsIn,
      totalFrames - totalShort,
      `[${s.name}] the oracle injected ${ovs.packetsIn} of ${totalFrames - totalShort} frames`,
    );
    assertExpected(
      s,
      'ovs',
      ovs.out,
      inputs.map((i) => i.data),
    );

    const report: RunReport = {
      scenario: s.name,
      dir: tmp,
      packetsIn: ovs.packetsIn,
      skippedShort: ovs.skippedShort,
      emitted: Object.fromEntries(Object.entries(ovs.out).map(([k, v]) => [k, v.length])),
    };
    if (opts.oracleOnly) return report;

    const dvrDir = join(tmp, 'dvrlab');
    mkdirSync(dvrDir);
    const dvr = runDvrlab(s, loc, cfg, inputs, dvrDir);
    assert.equal(
      dvr.packetsIn,
      ovs.packetsIn + ovs.skippedShort,
      `[${s.name}] dvrlab read ${dvr.packetsIn} input frames; the inputs hold ` +
        `${ovs.packetsIn + ovs.skippedShort} (the oracle injected ${ovs.packetsIn} and ` +
        `skipped ${ovs.skippedShort} shorter than 14 bytes)`,
    );
    compareOutputs(s, vxlanPorts(loadScenarioJson(cfg)), ovs.out, dvr.out);
    assertExpected(
      s,
      'dvrlab',
      dvr.out,
      inputs.map((i) => i.data),
    );
    compareFlows(s, ovsDir, dvrDir);
    if (s.compareMegaflows !== false) compareMegaflows(s, loc, cfg, inputs, ovsDir);
    report.dvrlab = { packetsIn: dvr.packetsIn, dropped: dvr.stats.dropped };
    return report;
  } finally {
    if (opts.keep !== true) rmSync(tmp, { recursive: true, force: true });
  }
}
