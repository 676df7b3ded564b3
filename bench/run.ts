/**
 * `npm run bench`: every benchmark of dvrlab in one command, written to bench/RESULTS.md with
 * its plots (bench/flows.svg, bench/sizes.svg, bench/paths.svg).
 *
 * Every figure comes from the `dvrlab bench` command (src/cli/bench.ts) run as a child
 * process on scenarios and captures written to a temporary directory, so each measurement
 * starts from a fresh process and its memory is given back before the next:
 * - the headline targets, each measured and compared with its goal ("met", or "missed by
 *   X %"), with instructions per packet counted by callgrind where the row is a datapath
 *   figure;
 * - the real capture `captures/ndpi-merged-100k.pcap` through L2 rewrite and VXLAN encap:
 *   dvrlab in memory, `dvrlab replay` from file to files, the null replay (the file I/O
 *   ceiling), and the OVS 3.1 oracle end to end and its PMD's datapath-only estimate;
 * - two threads against one (`--threads 2`, the flows split by RSS hash) on the real capture,
 *   100k flows and new NAT connections;
 * - sweeps: the number of flows (one rule and one megaflow per destination), the packet size
 *   (L2 rewrite and VXLAN encap), and the four packet paths of the seed devstack-dvr.
 *
 * Options (environment): DVRLAB_BENCH_MIN_SECONDS (timed seconds per forward measurement,
 * default 1), DVRLAB_BENCH_PASSES (at least this many timed passes, default 3; setup
 * measurements run exactly this many), DVRLAB_BENCH_NO_ORACLE=1 (skip OVS),
 * DVRLAB_BENCH_NO_CALLGRIND=1 (skip instruction counts), DVRLAB_BENCH_OUT (write RESULTS.md
 * and the plots to this directory instead of bench/), DVRLAB_SHARED (the shared directory).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchReport } from '../src/cli/bench.js';
import { demoPaths } from '../src/demo/capture.js';
import type { StatsJson } from '../src/native.js';
import { loadScenarioOrTopology, loadTopologyArgument } from '../src/neutron/load.js';
import { PortIndex } from '../src/scenario/ports.js';
import {
  DST_BASE,
  UNDERLAY,
  flowVariant,
  ipString,
  udpFrames,
  vxlanFrames,
  writeFrames,
} from './frames.js';
import { barChart, lineChart } from './svg.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const OUT = process.env.DVRLAB_BENCH_OUT ?? path.join(ROOT, 'bench');
const MIN_SECONDS = Number(process.env.DVRLAB_BENCH_MIN_SECONDS ?? 1);
const PASSES = Number(process.env.DVRLAB_BENCH_PASSES ?? 3);
const ORACLE = process.env.DVRLAB_BENCH_NO_ORACLE !== '1';
const CALLGRIND = process.env.DVRLAB_BENCH_NO_CALLGRIND !== '1';

function sharedDir(): string {
  const candidates = [
    process.env.DVRLAB_SHARED,
    path.resolve(ROOT, '..', 'shared'),
    '/work/shared',
  ];
  for (const c of candidates) {
    if (c && existsSync(path.join(c, 'captures'))) return c;
  }
  throw new Error(
    `no shared directory with captures/ under ${candidates.filter(Boolean).join(', ')}`,
  );
}

const log = (s: string) => process.stderr.write(`${s}\n`);

/** Runs `dvrlab bench ... --json` in a child process. */
function bench(scenario: string, inputs: string[], extra: string[] = []): BenchReport {
  const args = [CLI, 'bench', scenario];
  for (const i of inputs) args.push('--in', i);
  args.push('--json', ...extra);
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) {
    throw new Error(
      `dvrlab bench ${scenario} ${inputs.join(' ')}: ${r.stderr.trim() || r.status}`,
    );
  }
  return JSON.parse(r.stdout) as BenchReport;
}

/** Runs `dvrlab replay ... --json` in a child process, writing the outputs under `out`. */
function replay(scenario: string, input: string, out: string): StatsJson {
  const r = spawnSync(
    process.execPath,
    [CLI, 'replay', scenario, '--in', input, '--out', out, '--json', '--no-progress'],
    { encoding: 'utf8', maxBuffer: 1 << 26 },
  );
  if (r.status !== 0) throw new Error(`dvrlab replay ${scenario}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as StatsJson;
}

const forward = () => ['--passes', String(PASSES), '--min-seconds', String(MIN_SECONDS)];
const setup = () => ['--mode', 'setup', '--passes', String(PASSES)];
const counted = () => (CALLGRIND ? ['--instructions'] : []);

/** Runs of each target's measurement (and of each point of the flows sweep). */
const RUNS = Math.max(1, Number(process.env.DVRLAB_BENCH_RUNS ?? 3));

/** A benchmark run RUNS times: the median run, and the lowest and highest rates. */
type Measured = BenchReport & { low: number; high: number };

/** The run with the median rate (the lower of the two middle ones for an even count). */
function median<T>(runs: T[], rate: (r: T) => number): { mid: T; low: number; high: number } {
  const sorted = [...runs].sort((a, b) => rate(a) - rate(b));
  return {
    mid: sorted[(sorted.length - 1) >> 1]!,
    low: rate(sorted[0]!),
    high: rate(sorted[sorted.length - 1]!),
  };
}

/**
 * `bench` RUNS times in a row, instructions counted by the first run only (they do not move
 * with the machine's load; the rates do): the run with the median rate (the lower of the two
 * middle ones for an even count), with the lowest and highest rates.
 */
function benchMedian(
  scenario: string,
  inputs: string[],
  extra: string[] = [],
  rate: (r: BenchReport) => number = (r) => r.pps,
): Measured {
  const first = bench(scenario, inputs, extra);
  const rest = extra.filter((a) => a !== '--instructions');
  const runs = [first];
  for (let i = 1; i < RUNS; i++) runs.push(bench(scenario, inputs, rest));
  const { mid, low, high } = median(runs, rate);
  return { ...mid, instructions: first.instructions, notes: first.notes, low, high };
}

/** "median of 3 runs: 5.30–5.85" (empty for a single run); `unit` formats a rate. */
const spread = (m: Measured, unit = (n: number) => (n / 1e6).toFixed(2)) =>
  RUNS > 1 ? `median of ${RUNS} runs: ${unit(m.low)}–${unit(m.high)}` : '';

const fmt = (n: number) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(0);
const mpps = (n: number) => `${(n / 1e6).toFixed(2)} Mpps`;
const pct = (n: number) => `${(100 * n).toFixed(1)} %`;
/** Why instructions were not counted, when `dvrlab bench --instructions` said so. */
const uncounted = new Set<string>();
const ipp = (r: BenchReport) => {
  for (const n of r.notes) if (n.startsWith('instructions: ')) uncounted.add(n.slice(14));
  return r.instructions ? r.instructions.per_packet.toFixed(0) : '–';
};

// ---------------------------------------------------------------------------------------
// Scenarios

const MTU = 65000; // the real capture has GRO/TSO frames up to 37 kB; OVS drops frames over MTU

function l2Scenario(emcInsertInvProb?: number): object {
  return {
    comment: 'bench: one bridge, rewrite the source MAC of everything from p1 and send it to p2',
    mtu: MTU,
    ...(emcInsertInvProb !== undefined
      ? { ovs_other_config: { 'emc-insert-inv-prob': String(emcInsertInvProb) } }
      : {}),
    bridges: [
      {
        name: 'br0',
        ports: [
          { name: 'p1', ofport: 1, type: 'dummy' },
          { name: 'p2', ofport: 2, type: 'dummy' },
        ],
        flows: ['in_port=1,actions=mod_dl_src:02:00:00:00:00:aa,output:2'],
      },
    ],
  };
}

function vxlanScenario(): object {
  return {
    comment: 'bench: br-int -> patch -> br-tun VNI 0x42 -> native tunnel via br-phy -> eth0',
    mtu: MTU,
    bridges: [
      {
        name: 'br-int',
        ports: [
          { name: 'vm1', ofport: 1, type: 'dummy' },
          { name: 'patch-tun', ofport: 2, type: 'patch', options: { peer: 'patch-int' } },
        ],
        flows: ['in_port=1,actions=output:2', 'in_port=2,actions=output:1'],
      },
      {
        name: 'br-tun',
        ports: [
          { name: 'patch-int', ofport: 1, type: 'patch', options: { peer: 'patch-tun' } },
          {
            name: 'vxlan0',
            ofport: 2,
            type: 'vxlan',
            options: { remote_ip: UNDERLAY.remoteIp, key: 'flow' },
          },
        ],
        flows: [
          `in_port=1,actions=set_field:${UNDERLAY.vni}->tun_id,output:2`,
          `in_port=2,tun_id=${UNDERLAY.vni},actions=output:1`,
        ],
      },
      {
        name: 'br-phy',
        mac: UNDERLAY.localMac,
        ip: `${UNDERLAY.localIp}/24`,
        ports: [{ name: 'eth0', ofport: 1, type: 'dummy' }],
        flows: ['actions=NORMAL'],
      },
    ],
    routes: [{ prefix: '192.168.1.0/24', dev: 'br-phy' }],
    neighbors: [{ dev: 'br-phy', ip: UNDERLAY.remoteIp, mac: UNDERLAY.remoteMac }],
  };
}

/** One rule per destination: `flows` rules in a flows file next to the scenario. */
function nwdstScenario(dir: string, flows: number): string {
  const lines: string[] = [];
  for (let i = 0; i < flows; i++)
    lines.push(`ip,nw_dst=${ipString(DST_BASE + i)},actions=output:2`);
  writeFileSync(path.join(dir, `nwdst-${flows}.flows`), `${lines.join('\n')}\n`);
  return write(dir, `nwdst-${flows}.json`, {
    comment: `bench: ${flows} rules, one per destination address: one megaflow per flow`,
    bridges: [
      {
        name: 'br0',
        ports: [
          { name: 'p1', ofport: 1, type: 'dummy' },
          { name: 'p2', ofport: 2, type: 'dummy' },
        ],
        flows: `nwdst-${flows}.flows`,
      },
    ],
  });
}

function write(dir: string, name: string, doc: object): string {
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(doc, null, 2));
  return file;
}

// ---------------------------------------------------------------------------------------
// The seed's packet paths

interface PathWorkload {
  id: string;
  title: string;
  node: string;
  inputs: string[]; // PORTREF=FILE
  frames: number;
}

/** Short names of the seed's paths, for the plot. */
const PATH_NAMES: Record<string, string> = {
  '5.1': 'same subnet',
  '5.2': 'routed by DVR',
  '5.3': 'SNAT',
  '5.4': 'floating IP',
};

/** Frames per workload of the path benchmarks (the path's frames, as flow variants). */
const PATH_FRAMES = 4096;
/** Distinct flows of each of a path's frames (ICMP ids, UDP source ports). */
const PATH_FLOWS = 16;

/**
 * The frames of each seed path (src/demo/capture.ts) that enter the node where the path
 * starts (its first VM's node; for the floating IP, the VM's node, whose uplink takes the
 * inbound half), each in PATH_FLOWS variants, interleaved in the path's order, one capture
 * per input port.
 */
function seedPaths(dir: string): PathWorkload[] {
  const topo = loadTopologyArgument('devstack-dvr');
  const index = new PortIndex(loadScenarioOrTopology('devstack-dvr').scenario);
  const nodeOf = (port: string) => index.resolveInput(port).node;
  return demoPaths(topo).map((p) => {
    const first = p.packets.find((k) => !k.port.endsWith('/uplink')) ?? p.packets[0]!;
    const node = nodeOf(first.port);
    const packets = p.packets.filter((k) => nodeOf(k.port) === node);
    const byPort = new Map<string, { frames: Buffer[]; ts: number[] }>();
    const rounds = Math.ceil(PATH_FRAMES / packets.length);
    let seq = 0;
    for (let r = 0; r < rounds; r++) {
      for (const k of packets) {
        const e = byPort.get(k.port) ?? { frames: [], ts: [] };
        byPort.set(k.port, e);
        e.frames.push(flowVariant(k.frame, r % PATH_FLOWS));
        e.ts.push(seq++);
      }
    }
    const inputs = [...byPort.entries()].map(([port, e], i) => {
      const file = path.join(dir, `path-${p.id}-${i}.pcap`);
      writeFrames(file, e.frames, (k) => e.ts[k]!);
      return `${port}=${file}`;
    });
    return { id: p.id, title: p.title, node, inputs, frames: seq };
  });
}

/** §5.2's echo requests alone (test02 on node2 to test04 on node3), in PATH_FLOWS flows. */
function dvrRequests(dir: string): { input: string; node: string } {
  const topo = loadTopologyArgument('devstack-dvr');
  const p = demoPaths(topo).find((x) => x.id === '5.2')!;
  const req = p.packets.find((k) => k.label.startsWith('ICMP echo request'))!;
  const frames: Buffer[] = [];
  for (let i = 0; i < PATH_FRAMES; i++) frames.push(flowVariant(req.frame, i % PATH_FLOWS));
  const file = path.join(dir, 'dvr-5.2-requests.pcap');
  writeFrames(file, frames, (k) => k);
  return { input: `${req.port}=${file}`, node: 'node2' };
}

/** Connections of the NAT benchmark: distinct UDP source ports from the floating IP's VM. */
const NAT_CONNECTIONS = 20000;

/**
 * §5.4 outbound: the floating IP's VM sends UDP to 8.8.8.8 from NAT_CONNECTIONS source ports,
 * after the external gateway's ARP request (which teaches the fip namespace its MAC).
 */
function natWorkload(dir: string): string[] {
  const topo = loadTopologyArgument('devstack-dvr');
  const p = demoPaths(topo).find((x) => x.id === '5.4')!;
  const arp = p.packets[0]!;
  const udp = p.packets.find((k) => k.label.includes('(outbound)'))!;
  const arpFile = path.join(dir, 'nat-arp.pcap');
  writeFrames(arpFile, [arp.frame], () => 0);
  const frames: Buffer[] = [];
  for (let i = 0; i < NAT_CONNECTIONS; i++) frames.push(flowVariant(udp.frame, i));
  const udpFile = path.join(dir, 'nat-udp.pcap');
  writeFrames(udpFile, frames, (k) => k + 1);
  return [`${arp.port}=${arpFile}`, `${udp.port}=${udpFile}`];
}

// ---------------------------------------------------------------------------------------
// The run

interface Target {
  name: string;
  goal: string;
  measured: string;
  instructions: string;
  ratio: number | null; // measured / goal; null when it could not be measured
}

function verdict(ratio: number | null): string {
  if (ratio === null) return 'not measured';
  return ratio >= 1 ? 'met' : `missed by ${((1 - ratio) * 100).toFixed(0)} %`;
}

async function main(): Promise<void> {
  const started = Date.now();
  const load0 = os.loadavg()[0]!;
  const shared = sharedDir();
  const capture = path.join(shared, 'captures', 'ndpi-merged-100k.pcap');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'dvrlab-bench-'));
  try {
    const l2 = write(tmp, 'l2.json', l2Scenario());
    const l2NoEmc = write(tmp, 'l2-no-emc.json', l2Scenario(0));
    const vxlan = write(tmp, 'vxlan.json', vxlanScenario());
    const small = path.join(tmp, 'udp-10-flows-64.pcap');
    writeFrames(small, udpFrames(10000, 10, 64), (k) => k);
    const decap = path.join(tmp, 'vxlan-10-flows-64.pcap');
    writeFrames(decap, vxlanFrames(udpFrames(10000, 10, 64)), (k) => k);

    // The headline targets.
    const targets: Target[] = [];
    log('targets: EMC hits ...');
    const emc = benchMedian(l2, [`p1=${small}`], [...forward(), ...counted()]);
    targets.push({
      name: 'Exact-match hits (EMC): L2 rewrite, 10 flows, 64-byte frames',
      goal: '≥ 15 Mpps',
      measured: `${mpps(emc.pps)} (EMC ${pct(emc.emc_hit_rate)}; ${spread(emc)})`,
      instructions: ipp(emc),
      ratio: emc.pps / 15e6,
    });
    log('targets: megaflow hits, EMC disabled ...');
    const mf = benchMedian(l2NoEmc, [`p1=${small}`], [...forward(), ...counted()]);
    targets.push({
      name: 'Megaflow-only hits: the same, `emc-insert-inv-prob=0`',
      goal: '≥ 8 Mpps',
      measured: `${mpps(mf.pps)} (megaflow ${pct(mf.megaflow_hit_rate)}; ${spread(mf)})`,
      instructions: ipp(mf),
      ratio: mf.pps / 8e6,
    });
    log('targets: VXLAN encap ...');
    const encap = benchMedian(vxlan, [`vm1=${small}`], [...forward(), ...counted()]);
    targets.push({
      name: 'VXLAN encap: br-int → br-tun → native tunnel via br-phy, 10 flows, 64-byte frames',
      goal: '≥ 8 Mpps',
      measured: `${mpps(encap.pps)} (${spread(encap)})`,
      instructions: ipp(encap),
      ratio: encap.pps / 8e6,
    });
    log('targets: VXLAN decap ...');
    const dec = benchMedian(vxlan, [`eth0=${decap}`], [...forward(), ...counted()]);
    targets.push({
      name: 'VXLAN decap: 114-byte VXLAN frames (64-byte inner) on br-phy’s NIC → vm1',
      goal: '≥ 8 Mpps',
      measured: `${mpps(dec.pps)} (${spread(dec)})`,
      instructions: ipp(dec),
      ratio: dec.pps / 8e6,
    });
    log('targets: full DVR path ...');
    const dvr = dvrRequests(tmp);
    const full = benchMedian('devstack-dvr', [dvr.input], [...forward(), ...counted()]);
    targets.push({
      name:
        'Full DVR path on one node: devstack-dvr §5.2 test02 (node2) → test04 (node3): ' +
        'br-int, qrouter, br-tun, VXLAN out; 16 flows',
      goal: '≥ 5 Mpps',
      measured: `${mpps(full.pps)} (${spread(full)})`,
      instructions: ipp(full),
      ratio: full.pps / 5e6,
    });

    // The flows sweep (its 10-flow point is the reference of the 100k and 1M targets).
    const FLOWS = [10, 1000, 10000, 100000, 1000000];
    const flows: { flows: number; r: Measured }[] = [];
    let setups: Measured | undefined;
    let always100k: BenchReport | undefined;
    for (const n of FLOWS) {
      log(`flows sweep: ${n} ...`);
      const sc = nwdstScenario(tmp, n);
      const cap = path.join(tmp, `nwdst-${n}.pcap`);
      writeFrames(cap, udpFrames(Math.max(n, 10000), n, 64), (k) => k);
      // Every point is timed alike (a pass of a million flows takes about 0.3 s, so its
      // passes are fewer); what a million costs more is the warm-up that sets them up.
      flows.push({ flows: n, r: benchMedian(sc, [`p1=${cap}`], forward()) });
      if (n === 100000) {
        log('flows sweep: 100000, --emc-always ...');
        always100k = bench(sc, [`p1=${cap}`], [...forward(), '--emc-always']);
      }
      if (n === 10000) {
        log('targets: slow-path setups ...');
        setups = benchMedian(
          sc,
          [`p1=${cap}`],
          [...setup(), ...counted()],
          (r) => r.upcalls_per_second,
        );
      }
      rmSync(cap, { force: true });
      rmSync(path.join(tmp, `nwdst-${n}.flows`), { force: true });
    }
    const at = (n: number) => flows.find((f) => f.flows === n)!.r.pps;
    targets.push(
      {
        name: 'Throughput at 100k flows (one megaflow each) against 10 flows',
        goal: '≥ ½',
        measured:
          `${(at(100000) / at(10)).toFixed(2)} (${mpps(at(100000))} / ${mpps(at(10))}` +
          `${RUNS > 1 ? `, medians of ${RUNS} runs` : ''})`,
        instructions: '–',
        ratio: at(100000) / at(10) / 0.5,
      },
      {
        name: 'Throughput at 1M flows against 10 flows',
        goal: '≥ ¼',
        measured:
          `${(at(1000000) / at(10)).toFixed(2)} (${mpps(at(1000000))} / ${mpps(at(10))}` +
          `${RUNS > 1 ? `, medians of ${RUNS} runs` : ''})`,
        instructions: '–',
        ratio: at(1000000) / at(10) / 0.25,
      },
    );
    if (setups) {
      targets.push({
        name: 'Slow-path setups: 10k flows, one rule each, every pass from empty caches',
        goal: '≥ 500 k/s',
        measured:
          `${fmt(setups.upcalls_per_second)}/s (${setups.upcalls_per_pass} upcalls/pass; ` +
          `${spread(setups, (n) => `${fmt(n)}/s`)})`,
        instructions: ipp(setups),
        ratio: setups.upcalls_per_second / 500e3,
      });
    }
    log('targets: new NAT connections ...');
    const nat = benchMedian(
      'devstack-dvr',
      natWorkload(tmp),
      [...setup(), ...counted()],
      (r) => r.conntrack_new_per_second,
    );
    targets.push({
      name:
        `New NAT connections: §5.4 floating IP outbound, ${NAT_CONNECTIONS} UDP source ports, ` +
        'every pass from empty caches and conntrack',
      goal: '≥ 500 k/s',
      measured:
        `${fmt(nat.conntrack_new_per_second)}/s (${nat.conntrack_new / nat.passes} new ` +
        `connections/pass, ${nat.delivered / nat.passes} of ${nat.frames} frames delivered; ` +
        `${spread(nat, (n) => `${fmt(n)}/s`)})`,
      instructions: ipp(nat),
      ratio: nat.conntrack_new_per_second / 500e3,
    });

    // The real capture.
    const real: string[] = [];
    const realNotes: string[] = [];
    const realRows: { name: string; mem: BenchReport; file: StatsJson }[] = [];
    for (const [name, sc, port] of [
      ['L2 rewrite', l2, 'p1'],
      ['VXLAN encap', vxlan, 'vm1'],
    ] as const) {
      log(`real capture: ${name} ...`);
      const extra = [...forward(), '--null', ...(ORACLE ? ['--oracle'] : [])];
      const mem = bench(sc, [`${port}=${capture}`], extra);
      // The file replay, RUNS times: the median run.
      const files: StatsJson[] = [];
      for (let i = 0; i < RUNS; i++) {
        files.push(replay(sc, `${port}=${capture}`, path.join(tmp, 'replay-out')));
        rmSync(path.join(tmp, 'replay-out'), { recursive: true, force: true });
      }
      const { mid: file, low, high } = median(files, (f) => f.pps);
      const fileSpread =
        RUNS > 1 ? `; replay median of ${RUNS} runs: ${fmt(low)}–${fmt(high)}` : '';
      realRows.push({ name, mem, file });
      const lookups = (r: { emc_hits: number; megaflow_hits: number; upcalls: number }) =>
        r.emc_hits + r.megaflow_hits + r.upcalls;
      const hits = (r: { emc_hits: number; megaflow_hits: number; upcalls: number }) =>
        `${pct(r.emc_hits / lookups(r))} | ${pct(r.megaflow_hits / lookups(r))}`;
      real.push(
        `| ${name} | dvrlab, in memory | ${fmt(mem.pps)} | ${mem.ns_per_packet.toFixed(0)} | ` +
          `${hits(mem)} | ${mem.upcalls} | ${mem.megaflows} |`,
        `| ${name} | dvrlab replay, file to files | ${fmt(file.pps)} | ` +
          `${(1e9 / file.pps).toFixed(0)} | ${hits(file)} | ${file.upcalls} | ${file.megaflows} |`,
      );
      if (mem.null) {
        real.push(
          `| ${name} | null replay: read the capture, write a pcap, no forwarding | ` +
            `${fmt(mem.null.pps)} | ${(1e9 / mem.null.pps).toFixed(0)} | | | | |`,
        );
      }
      const o = mem.oracle;
      if (o) {
        const ol = o.emc_hits + o.megaflow_hits + o.upcalls;
        real.push(
          `| ${name} | OVS 3.1 oracle, end to end | ${fmt(o.pps)} | ${(1e9 / o.pps).toFixed(0)} | ` +
            `${pct(o.emc_hits / ol)} | ${pct(o.megaflow_hits / ol)} | ${o.upcalls} | – |`,
        );
        if (o.datapath_pps) {
          real.push(
            `| ${name} | OVS 3.1 PMD, datapath-only estimate | ${fmt(o.datapath_pps)} | ` +
              `${(1e9 / o.datapath_pps).toFixed(0)} | | | | |`,
          );
        }
        targets.push({
          name: `File replay against the OVS oracle (end to end), ndpi-merged-100k, ${name}`,
          goal: '≥ 20×',
          measured:
            `${(file.pps / o.pps).toFixed(1)}× (${fmt(file.pps)} / ${fmt(o.pps)} pps` +
            `${fileSpread})`,
          instructions: '–',
          ratio: file.pps / o.pps / 20,
        });
        realNotes.push(
          `${name}: dvrlab in memory is ${(mem.pps / o.pps).toFixed(0)}× the oracle's end-to-end ` +
            `rate and ${o.datapath_pps ? (mem.pps / o.datapath_pps).toFixed(1) : '?'}× its ` +
            `PMD's datapath-only estimate; the file replay is ${(file.pps / o.pps).toFixed(1)}× ` +
            `the oracle end to end` +
            (mem.null ? ` and ${pct(file.pps / mem.null.pps)} of the null replay.` : '.'),
        );
      } else {
        const why = ORACLE
          ? (mem.notes.find((n) => n.startsWith('oracle: '))?.slice(8) ?? 'gave no figures')
          : 'skipped (DVRLAB_BENCH_NO_ORACLE=1)';
        realNotes.push(`${name}: OVS ${why}.`);
        targets.push({
          name: `File replay against the OVS oracle (end to end), ndpi-merged-100k, ${name}`,
          goal: '≥ 20×',
          measured: `dvrlab ${fmt(file.pps)} pps; OVS ${why}`,
          instructions: '–',
          ratio: null,
        });
      }
    }

    // Two threads, each with a datapath of its own and the flows split by RSS hash, against
    // the one-thread figures above.
    const scaling: { name: string; one: number; two: BenchReport; unit: string }[] = [];
    if (os.cpus().length >= 2) {
      const two = ['--threads', '2'];
      for (const { name, mem } of realRows) {
        log(`two threads: ${name} ...`);
        const sc = name === 'L2 rewrite' ? l2 : vxlan;
        const port = name === 'L2 rewrite' ? 'p1' : 'vm1';
        scaling.push({
          name: `${name}, ndpi-merged-100k`,
          one: mem.pps,
          two: bench(sc, [`${port}=${capture}`], [...forward(), ...two]),
          unit: 'pps',
        });
      }
      log('two threads: 100k flows ...');
      const sc = nwdstScenario(tmp, 100000);
      const cap = path.join(tmp, 'nwdst-100000.pcap');
      writeFrames(cap, udpFrames(100000, 100000, 64), (k) => k);
      scaling.push({
        name: '100k flows, one megaflow each, 64-byte frames',
        one: at(100000),
        two: bench(sc, [`p1=${cap}`], [...forward(), ...two]),
        unit: 'pps',
      });
      rmSync(cap, { force: true });
      log('two threads: new NAT connections ...');
      const nat2 = bench('devstack-dvr', natWorkload(tmp), [...setup(), ...two]);
      scaling.push({
        name: `New NAT connections (§5.4 outbound, ${NAT_CONNECTIONS} UDP source ports), setup mode`,
        one: nat.conntrack_new_per_second,
        two: { ...nat2, pps: nat2.conntrack_new_per_second },
        unit: 'connections/s',
      });
    }

    // The packet size sweep.
    const SIZES = [64, 128, 256, 512, 1024, 1518, 9000];
    const sizes: { size: number; l2: BenchReport; vxlan: BenchReport }[] = [];
    for (const size of SIZES) {
      log(`size sweep: ${size} ...`);
      const cap = path.join(tmp, `udp-10-flows-${size}.pcap`);
      writeFrames(cap, udpFrames(4096, 10, size), (k) => k);
      sizes.push({
        size,
        l2: bench(l2, [`p1=${cap}`], forward()),
        vxlan: bench(vxlan, [`vm1=${cap}`], forward()),
      });
      rmSync(cap, { force: true });
    }

    // The seed's paths.
    const paths: { p: PathWorkload; r: BenchReport }[] = [];
    for (const p of seedPaths(tmp)) {
      log(`seed paths: §${p.id} ...`);
      paths.push({ p, r: bench('devstack-dvr', p.inputs, forward()) });
    }

    // Plots.
    const banner = '<!-- Generated by `npm run bench` (bench/run.ts); rerun it to refresh. -->\n';
    writeFileSync(
      path.join(OUT, 'flows.svg'),
      banner +
        lineChart({
          title: 'Throughput against the number of flows (one megaflow each, 64-byte frames)',
          xLabel: 'flows (log scale)',
          yLabel: 'packets per second',
          logX: true,
          series: [
            { name: 'dvrlab, in memory', points: flows.map((f) => ({ x: f.flows, y: f.r.pps })) },
          ],
        }),
    );
    writeFileSync(
      path.join(OUT, 'sizes.svg'),
      banner +
        lineChart({
          title: 'Throughput against the frame size (10 flows)',
          xLabel: 'frame size, bytes (log scale)',
          yLabel: 'packets per second',
          logX: true,
          xFormat: (v) => String(v),
          series: [
            { name: 'L2 rewrite', points: sizes.map((s) => ({ x: s.size, y: s.l2.pps })) },
            { name: 'VXLAN encap', points: sizes.map((s) => ({ x: s.size, y: s.vxlan.pps })) },
          ],
        }),
    );
    writeFileSync(
      path.join(OUT, 'paths.svg'),
      banner +
        barChart({
          title: 'The seed devstack-dvr’s packet paths, on the node where each starts',
          xLabel: 'packets per second',
          bars: paths.map(({ p, r }) => ({
            label: `§${p.id} ${PATH_NAMES[p.id] ?? ''} (${p.node})`,
            value: r.pps,
          })),
        }),
    );

    // RESULTS.md.
    const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
    const load1 = os.loadavg()[0]!;
    const seconds = (Date.now() - started) / 1000;
    const targetRows = targets.map(
      (t) => `| ${t.name} | ${t.goal} | ${t.measured} | ${t.instructions} | ${verdict(t.ratio)} |`,
    );
    const flowRows = flows.map(
      ({ flows: n, r }) =>
        `| ${n} | ${fmt(r.pps)}${RUNS > 1 ? ` (${fmt(r.low)}–${fmt(r.high)})` : ''} | ` +
        `${r.ns_per_packet.toFixed(0)} | ${pct(r.emc_hit_rate)} | ` +
        `${pct(r.megaflow_hit_rate)} | ${pct(r.emc_bypassed / Math.max(1, r.packets))} | ` +
        `${r.megaflows} | ${r.subtables} | ${r.passes} |`,
    );
    const sizeRows = sizes.map(
      (s) =>
        `| ${s.size} | ${fmt(s.l2.pps)} | ${s.l2.gbps.toFixed(2)} | ${fmt(s.vxlan.pps)} | ` +
        `${s.vxlan.gbps.toFixed(2)} |`,
    );
    const scalingRows = scaling.map(({ name, one, two, unit }) => {
      const shares = two.threads.map((t) => t.packets / Math.max(1, t.passes)).join(' / ');
      return (
        `| ${name} | ${fmt(one)} ${unit} | ${fmt(two.pps)} ${unit} | ` +
        `${(two.pps / one).toFixed(2)}× | ${shares} |`
      );
    });
    const pathRows = paths.map(
      ({ p, r }) =>
        `| §${p.id} ${p.title} | ${p.node} | ${p.frames} | ${fmt(r.pps)} | ` +
        `${r.ns_per_packet.toFixed(0)} | ${(r.delivered / r.packets).toFixed(2)} | ` +
        `${((r.emc_hits + r.megaflow_hits + r.upcalls) / r.packets).toFixed(2)} | ` +
        `${r.megaflows} | ${r.conntrack} |`,
    );
    const busy =
      load0 > 0.5 || load1 > 1.5
        ? ` The load average was ${load0.toFixed(2)} when the run started and ` +
          `${load1.toFixed(2)} when it ended, on ${os.cpus().length} cores: other jobs were ` +
          'running, and the figures are lower than a quiet machine gives.'
        : '';
    const instructionsNote = !CALLGRIND
      ? ' Skipped in this run (DVRLAB_BENCH_NO_CALLGRIND=1).'
      : uncounted.size > 0
        ? ` Not counted in this run: ${[...uncounted].join('; ')}.`
        : '';
    const doc = `<!-- Generated by \`npm run bench\` (bench/run.ts); rerun it to refresh. -->
# Benchmark results

${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()},
Node ${process.version}, ${new Date(started).toISOString().slice(0, 10)}.
\`npm run bench\` took ${seconds.toFixed(0)} s.${busy}

Every dvrlab figure but the file replays (\`dvrlab replay\`) is measured by \`dvrlab bench\`
(README, \`dvrlab bench\`), each in a process of its own: the captures are held in memory
and pushed through one node's datapath on one core, in bursts of 32 frames. **Forward**
figures time warm passes after one untimed warm-up pass, for at least ${MIN_SECONDS} s and
${PASSES} passes. **Setup** figures empty the megaflow cache, the EMC and conntrack before
each of ${PASSES} timed passes, so every distinct flow costs an upcall (a translation through
the OpenFlow tables) and every connection a new conntrack entry. Outputs are counted, not
written. Instructions per packet are callgrind's count of the engine's timed loop
(\`bench_timed_loop\` and what it calls) divided by its packets, in a separate run of the
same benchmark (\`dvrlab bench --instructions\`; forward: as many passes as make 100 000
packets, setup: one pass).${instructionsNote}
${
  RUNS > 1
    ? `Each target, and each point of the flows sweep, is measured ${RUNS} times in a row, in a
process each: the median run is given, with the lowest and highest rates, since the rates
move with the machine's load (instructions are counted once; the OVS oracle, the peer of
the file replays, runs once).
`
    : ''
}Synthetic frames are UDP over IPv4 from 10.0.0.1 to 11.0.0.1 + i, with their size as
captured (no FCS).

## Targets

| target | goal | measured | instructions/pkt | result |
| --- | --- | ---: | ---: | --- |
${targetRows.join('\n')}

Where a target is missed, [PROFILE.md](PROFILE.md) says what the profiles show and what comes
next.

## A real capture: ndpi-merged-100k

\`captures/ndpi-merged-100k.pcap\` (100 734 frames of real traffic, mixed sizes up to 37 kB;
the one frame shorter than an Ethernet header is left out of the in-memory passes) through
two one-node scenarios, the same files for dvrlab and Open vSwitch: L2 rewrite (one bridge,
\`in_port=1,actions=mod_dl_src:…,output:2\`) and VXLAN encap (br-int → patch → br-tun
\`set_field:0x42->tun_id\` → native tunnel through the underlay bridge br-phy, NORMAL → eth0).
In memory: \`dvrlab bench --null --oracle\`. File to files: \`dvrlab replay\` reading the pcap
and writing every output pcap. Null replay: the same capture read and written to a pcap with
no datapath between, the ceiling of a file replay. OVS: the \`ovs-oracle\` (OVS 3.1, userspace
datapath, dummy ports, PMD on its own core) on the same scenario file and capture,
\`--no-capture --perf\`; its end-to-end rate is bound by its injection harness (see
tools/OVS-ORACLE.md), the datapath-only estimate is TSC Hz over the PMD's median cycles per
packet. Hit rates are per lookup (a recirculation looks up again).

| workload | system | pps | ns/pkt | EMC hits | megaflow hits | upcalls | megaflows |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |
${real.join('\n')}

${realNotes.map((n) => `- ${n}`).join('\n')}

## Two threads

\`dvrlab bench --threads 2\`: the frames split over two threads by the RSS hash of their
5-tuple, as a NIC spreads flows over receive queues (a flow stays on one thread), each thread
with a datapath of its own built from the scenario, as each PMD thread of OVS has its own
EMC and megaflow table; the threads time the same window and the rate is the sum of theirs.
One thread: the figures above, from the same run.${
      scaling.length === 0 ? ' Not measured: this machine has one core.' : ''
    }

| workload | one thread | two threads | scaling | frames per thread (a pass) |
| --- | ---: | ---: | ---: | ---: |
${scalingRows.join('\n')}

## Number of flows

One rule per destination address (\`ip,nw_dst=11.0.0.x,actions=output:2\`) and traffic to as
many destinations, 64-byte frames, forward mode: each flow is its own megaflow, the hard case
for the caches (the EMC holds 8192 entries). A pass is max(flows, 10 000) frames, the flows
in turn; every point is timed for the same seconds, so the larger ones run fewer passes.
With 100k flows and more, fewer than half of the EMC's probes hit, and bursts leave it out
(15 in 16). With \`--emc-always\`, which probes it for every packet as OVS does, 100k flows
run at ${always100k ? `${mpps(always100k.pps)}, ${(always100k.pps / at(10)).toFixed(2)} of 10 flows` : '–'}.

![Throughput against the number of flows](flows.svg)

| flows | pps | ns/pkt | EMC hits | megaflow hits | of them, EMC left out | megaflows | subtables | passes |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${flowRows.join('\n')}

## Frame size

10 flows, 4096 frames a pass, forward mode; L2 rewrite and VXLAN encap as above (the VXLAN
frames leave 50 bytes longer). Gbit/s counts the input frames' bytes.

![Throughput against the frame size](sizes.svg)

| frame bytes | L2 rewrite pps | Gbit/s | VXLAN encap pps | Gbit/s |
| ---: | ---: | ---: | ---: | ---: |
${sizeRows.join('\n')}

## The seed's packet paths

The four paths of the DVR reference (§5) on the built-in \`devstack-dvr\`, with the frames of
\`dvrlab demo\` (src/demo/capture.ts) that enter the node where the path starts (ARP
included), each in ${PATH_FLOWS} flows (ICMP identifiers, UDP source ports), ${PATH_FRAMES}
frames a pass, forward mode. A frame that leaves by the underlay is counted as an output there:
its second pass, on the receiving node, is not part of these figures. Lookups per packet count
the passes through the datapath (recirculations after conntrack and in namespaces).

![The seed's packet paths](paths.svg)

| path | node | frames | pps | ns/pkt | delivered/pkt | lookups/pkt | megaflows | conntrack |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${pathRows.join('\n')}
`;
    // Live throughput is measured by bench/lab-iperf.sh (root), which writes bench/live.md.
    const live = path.join(ROOT, 'bench', 'live.md');
    const liveDoc = existsSync(live) ? `\n${readFileSync(live, 'utf8')}` : '';
    writeFileSync(path.join(OUT, 'RESULTS.md'), doc + liveDoc);
    process.stdout.write(`${targetRows.join('\n')}\n`);
    log(`wrote ${path.join(OUT, 'RESULTS.md')} in ${seconds.toFixed(0)} s`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).message}\n`);
  process.exit(1);
});
