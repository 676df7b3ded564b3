/**
 * `dvrlab demo`: the four packet paths of the DVR reference (§5) on the built-in seed
 * devstack, end to end, in one command.
 *
 * It writes a capture of the paths (both directions, with the ARP that comes first), replays
 * it through the engine once, with every input packet traced by the real translator in that
 * same run (so each trace sees the conntrack entries and learned MACs the run had built), and
 * prints each packet's hops: node, bridge or namespace, what changed and where it left.
 * Nothing printed is known in advance: it is all read from the run.
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { FileError } from '../errors.js';
import { makeDirs } from '../fsutil.js';
import { Engine, type PacketTraceJson, type StatsJson } from '../native.js';
import { DEVSTACK_DVR } from '../neutron/devstack-dvr.js';
import { loadTopologyArgument } from '../neutron/load.js';
import type { Topology } from '../neutron/topology.js';
import { writePcap } from '../packets.js';
import { describeFsError } from '../scenario/load.js';
import { PortIndex } from '../scenario/ports.js';
import { EXTERNAL_GW_MAC, demoPaths, type DemoPacket } from '../demo/capture.js';
import { type Change, type FollowedPacket, type Hop, followPacket } from '../demo/hops.js';
import { type CliIo, planReplay, prepareOutputs } from './replay.js';
import { checkInvariant, formatReplaySummary } from './summary.js';
import { InvariantViolation } from './replay.js';

export interface DemoArgs {
  out: string;
  json?: boolean;
}

/** The default output directory. */
export const DEMO_OUT = 'demo-out';

/** One packet of the demo, as reported. */
export interface DemoPacketReport {
  packet: number; // 1-based index in the run
  label: string;
  input: string; // canonical input port
  to: string; // canonical port it was meant to leave by
  reached: boolean;
  left?: { port: string; file?: string };
  drop: string | null;
  hops: Hop[];
  copies: string[]; // files of the ports other frames it caused left by (floods)
  wire: string[]; // files of the underlay ports the followed branch crossed
}

export interface DemoReport {
  out: string;
  inputs: { port: string; path: string; packets: number }[];
  paths: { id: string; title: string; packets: DemoPacketReport[] }[];
  stats: StatsJson;
}

/** Names for the MACs a reader meets: VMs, router ports, DVR MACs, the external gateway. */
function macNames(topo: Topology): Map<string, string> {
  const names = new Map<string, string>([[EXTERNAL_GW_MAC, 'external gateway']]);
  for (const n of topo.nodes) if (n.dvrMac) names.set(n.dvrMac, `${n.name} DVR MAC`);
  for (const v of topo.vms) names.set(v.port.mac, v.name);
  for (const r of topo.routers) {
    if (r.gateway) names.set(r.gateway.mac, r.gateway.device);
    for (const i of r.interfaces) {
      names.set(i.qr.mac, i.qr.device);
      if (i.sg) names.set(i.sg.mac, i.sg.device);
    }
  }
  for (const fg of topo.fipGateways.values()) names.set(fg.mac, fg.device);
  return names;
}

function changeText(c: Change, mac: (m: string) => string): string {
  switch (c.kind) {
    case 'vlan_push':
      return `push VLAN ${c.vid}`;
    case 'vlan_pop':
      return `pop VLAN ${c.vid}`;
    case 'vlan_mod':
      return `VLAN ${c.from} -> ${c.to}`;
    case 'dl_src':
      return `src MAC ${mac(c.from)} -> ${mac(c.to)}`;
    case 'dl_dst':
      return `dst MAC ${mac(c.from)} -> ${mac(c.to)}`;
    case 'ttl':
      return `TTL ${c.from} -> ${c.to}`;
    case 'snat':
      return `NAT src ${c.from} -> ${c.to}`;
    case 'dnat':
      return `NAT dst ${c.from} -> ${c.to}`;
    case 'arp_reply':
      return `ARP reply ${c.ip} is-at ${mac(c.mac)}`;
    case 'vxlan_encap':
      return `VXLAN encap VNI ${c.vni} ${c.outer_src} -> ${c.outer_dst} (inner src ${mac(c.inner_dl_src)})`;
    case 'vxlan_decap':
      return `VXLAN decap VNI ${c.vni} from ${c.outer_src}`;
  }
}

/** A namespace's long name, shortened to its kind and the first block of its id. */
const NAMESPACE_RE = /\b(qrouter|snat|fip)-([0-9a-f]{8})-[0-9a-f-]+/;

function shortWhere(where: string): string {
  return where.replace(NAMESPACE_RE, '$1-$2');
}

/** The report as a person reads it. */
export function formatDemo(r: DemoReport, topo: Topology): string[] {
  const names = macNames(topo);
  const mac = (m: string) => (names.has(m) ? `${m} (${names.get(m)})` : m);
  const lines: string[] = [];
  lines.push(
    `dvrlab demo: the four packet paths of the Neutron DVR reference (§5) on ${DEVSTACK_DVR}`,
  );
  const total = r.inputs.reduce((n, i) => n + i.packets, 0);
  lines.push(`capture: ${total} packets in ${path.join(r.out, 'input')}; outputs in ${r.out}/`);
  for (const p of r.paths) {
    lines.push('', `§${p.id} ${p.title}`);
    for (const k of p.packets) {
      lines.push(`  #${k.packet} ${k.label}  [in ${k.input}]`);
      for (const h of k.hops) {
        const what = [...h.changes.map((c) => changeText(c, mac)), ...h.notes].join('; ');
        const where = `${h.node} ${shortWhere(h.where)}`.padEnd(22);
        const next = h.next ? `  -> ${h.next.replace(NAMESPACE_RE, '$1-$2')}` : '';
        lines.push(`     ${where} ${what || 'no change'}${next}`);
      }
      if (k.reached) {
        lines.push(`     => left ${k.to} into ${k.left?.file ?? k.to}`);
      } else if (k.left) {
        lines.push(`     => NOT at ${k.to}: left ${k.left.port} into ${k.left.file ?? '?'}`);
      } else {
        lines.push(`     => NOT at ${k.to}: dropped (${k.drop ?? 'no output'})`);
      }
      if (k.copies.length > 0)
        lines.push(`        other frames it caused: ${k.copies.join(', ')}`);
    }
    const ok = p.packets.filter((k) => k.reached).length;
    lines.push(`  ${ok} of ${p.packets.length} packets left by the port they were meant for`);
  }
  lines.push('', ...formatReplaySummary(r.stats, 1));
  return lines;
}

/** Runs `dvrlab demo` and returns the exit code. */
export async function demoCommand(args: DemoArgs, io: CliIo): Promise<number> {
  const topo = loadTopologyArgument(DEVSTACK_DVR);
  const paths = demoPaths(topo);

  // The capture: one pcap per input port, 1 ms apart, in the order of the paths, so the
  // replay's packet N is the Nth packet listed.
  const inputDir = path.join(args.out, 'input');
  const all: (DemoPacket & { path: string; index: number })[] = [];
  for (const p of paths)
    for (const k of p.packets) all.push({ ...k, path: p.id, index: all.length + 1 });
  const byPort = new Map<string, typeof all>();
  for (const k of all) byPort.set(k.port, [...(byPort.get(k.port) ?? []), k]);
  const t0 = 1_700_000_000_000_000n;
  const inputs: { port: string; path: string; packets: number }[] = [];
  try {
    makeDirs(inputDir);
    for (const [port, ks] of byPort) {
      const file = path.join(inputDir, `${port.replace(/\//g, '-')}.pcap`);
      writePcap(
        file,
        ks.map((k) => ({ tsUsec: t0 + BigInt(k.index) * 1000n, data: k.frame })),
      );
      inputs.push({ port, path: file, packets: ks.length });
    }
  } catch (e) {
    throw new FileError(`--out ${args.out}: cannot write the capture: ${describeFsError(e)}`);
  }

  const plan = planReplay(DEVSTACK_DVR, {
    in: inputs.map((i) => `${i.port}=${i.path}`),
    out: args.out,
    loop: 1,
    progress: false,
  });
  plan.options.tracePackets = all.map((k) => k.index);
  plan.options.traceNames = true;
  for (const w of plan.warnings) io.stderr.write(`dvrlab: warning: ${w}\n`);
  const index = new PortIndex(plan.engineScenario);
  const engine = new Engine(plan.engineScenario);
  prepareOutputs(plan);
  const result = (await engine.replay(plan.options)) as StatsJson & {
    traces?: PacketTraceJson[];
  };
  const { traces = [], ...counters } = result;
  const stats = counters as StatsJson;
  const statsPath = path.join(args.out, 'stats.json');
  try {
    writeFileSync(statsPath, `${JSON.stringify(stats, null, 2)}\n`);
  } catch (e) {
    throw new FileError(`cannot write ${statsPath}: ${describeFsError(e)}`);
  }
  const check = checkInvariant(stats, 1);
  if (!check.ok) throw new InvariantViolation(check.problems);

  const fileOf = (ref: string) => {
    const p = index.get(ref);
    return p ? path.join(args.out, p.output) : undefined;
  };
  const report: DemoReport = {
    out: args.out,
    inputs,
    paths: paths.map((p) => ({ id: p.id, title: p.title, packets: [] })),
    stats,
  };
  for (const k of all) {
    const t = traces.find((x) => x.packet === k.index);
    const to = index.resolveInput(k.to).ref;
    const input = index.resolveInput(k.port).ref;
    const followed: FollowedPacket = t
      ? followPacket(t, to)
      : { hops: [], reached: false, copies: [], wire: [] };
    const copies = [...new Set(followed.copies.map((c) => fileOf(c) ?? c))];
    report.paths
      .find((p) => p.id === k.path)!
      .packets.push({
        packet: k.index,
        label: k.label,
        input,
        to,
        reached: followed.reached,
        ...(followed.left
          ? { left: { port: followed.left.ref, ...optional('file', fileOf(followed.left.ref)) } }
          : {}),
        drop: t?.drop ?? null,
        hops: followed.hops,
        copies,
        wire: followed.wire.map((w) => fileOf(w) ?? w),
      });
  }
  if (args.json) io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else io.stdout.write(`${formatDemo(report, topo).join('\n')}\n`);
  return 0;
}

function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string };
}
