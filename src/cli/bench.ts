/**
 * `dvrlab bench`: the datapath of one node measured on a capture held in memory.
 *
 * The captures are read into memory (merged in timestamp order, as a replay merges them) and
 * pushed through the node of their ports again and again by the engine (`benchFrames`):
 * `forward` mode times warm passes (after one untimed warm-up pass), `setup` mode empties
 * the megaflow cache, the EMC and conntrack before every timed pass, so each distinct flow
 * costs an upcall and each connection a new conntrack entry. Outputs are counted, not
 * written. Beside it, in the same run and on request:
 * - `--instructions`: the same benchmark in a child process under valgrind's callgrind,
 *   counting the instructions of the engine's timed loop alone (`bench_timed_loop` and what
 *   it calls), divided by the packets it timed;
 * - `--null`: the null replay, reading the captures and writing their frames to a pcap with
 *   no forwarding, the file I/O ceiling of `dvrlab replay`;
 * - `--oracle`: the OVS 3.1 oracle (`tools/ovs-oracle`) on the same one-node scenario file
 *   and captures, its end-to-end rate and its PMD's datapath-only estimate.
 * - `--map`: the captures' hosts mapped onto a Neutron topology first, as `replay --map`
 *   maps them; each node is measured on the frames that enter it and the figures add up.
 * - `--threads N`: the flows split over N threads by their RSS hash, each thread with a
 *   datapath of its own (as OVS's PMD threads have their own caches); the rate is the sum
 *   of the threads' rates over the same window.
 * What cannot be had (no valgrind, no oracle, a multi-node scenario for the oracle) is said
 * in one note and the rest goes on.
 */
import { spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileError, PortRefError } from '../errors.js';
import {
  Engine,
  loadBenchFrames,
  nullReplay,
  type BenchFramesJson,
  type CaptureCountsJson,
  type NativeScenario,
  type NullReplayJson,
} from '../native.js';
import { loadScenarioOrTopology } from '../neutron/load.js';
import {
  knowEndpoints,
  loadMapTopology,
  mapSpec,
  type MapStatsJson,
  type NativeMapSpec,
} from '../neutron/map.js';
import { describeFsError } from '../scenario/load.js';
import { PortIndex, type PortInfo } from '../scenario/ports.js';
import { type CliIo, splitInput } from './replay.js';

/** The parsed options of `dvrlab bench`. */
export interface BenchArgs {
  in: string[];
  map?: boolean;
  json?: boolean;
  passes: number;
  minSeconds: number;
  threads?: number;
  mode: 'forward' | 'setup';
  instructions?: boolean;
  null?: boolean;
  oracle?: boolean;
  emcAlways?: boolean;
}

/** Instructions per packet, counted by callgrind over one timed pass. */
export interface InstructionsJson {
  total: number; // instructions executed in the timed loop
  packets: number; // packets of that pass
  per_packet: number;
}

/** The OVS oracle's figures on the same scenario and captures. */
export interface OracleJson {
  packets: number;
  seconds: number;
  pps: number; // end to end, bound by its injection harness
  datapath_pps: number | null; // TSC Hz over the PMD's median cycles per packet
  emc_hits: number;
  megaflow_hits: number;
  upcalls: number;
}

/** One capture of a benchmark; with --map the counts are the mapper's (`map`). */
export interface BenchInputJson extends Partial<CaptureCountsJson> {
  port: string | null; // canonical; null with --map (frames enter at their hosts' ports)
  path: string;
}

/** The figures of one node's benchmark (all of a benchmark without --map). */
export interface NodeBenchJson extends BenchFramesJson {
  node: string; // "" in a one-node scenario
  ports: string[]; // canonical references of the ports frames arrive on
  frames: number; // frames of the workload (one pass)
  frame_bytes: number; // their bytes
  delivered: number; // packets emitted on at least one port
  gbps: number; // frame bits per second through the datapath
  upcalls_per_pass: number;
}

/** What `dvrlab bench --json` prints (documented in the README). */
export interface BenchReport extends Omit<NodeBenchJson, 'node'> {
  scenario: string;
  node: string | null; // the node measured ("" one-node); null with --map (see `nodes`)
  mode: 'forward' | 'setup';
  inputs: BenchInputJson[];
  /** --map: each node's benchmark; the figures above add them up. */
  nodes: NodeBenchJson[] | null;
  map: (MapStatsJson & { too_long: number }) | null; // --map: what the mapper did
  instructions: InstructionsJson | null;
  null: NullReplayJson | null;
  oracle: OracleJson | null;
  notes: string[];
}

/** Everything a benchmark needs, checked; no engine involved. */
interface BenchPlan {
  scenarioFile: string;
  scenario: NativeScenario;
  warnings: string[];
  node: string;
  ports: PortInfo[];
  inputs: { port?: PortInfo; index: number; path: string }[];
  map?: NativeMapSpec; // --map: what the capture's hosts are mapped onto
}

function checkReadable(spec: string, file: string): void {
  try {
    accessSync(file, constants.R_OK);
    if (!statSync(file).isFile()) throw Object.assign(new Error(), { code: 'EISDIR' });
  } catch (e) {
    throw new FileError(`--in ${spec}: cannot read ${file}: ${describeFsError(e)}`);
  }
}

/** --map: as `replay --map` plans it (the topology's VMs, the endpoints known). */
function planMapped(scenarioFile: string, args: BenchArgs): BenchPlan {
  const topology = loadMapTopology(scenarioFile);
  const loaded = loadScenarioOrTopology(scenarioFile);
  const index = new PortIndex(loaded.scenario);
  const warnings = [...loaded.warnings];
  const inputs = args.in.map((spec, k) => {
    // FILE alone; a PORTREF given anyway is ignored (a file whose name has a '=' is whole).
    const split = spec.indexOf('=') > 0 && !existsSync(spec) ? splitInput(spec) : undefined;
    if (split) {
      warnings.push(
        `--in ${spec}: with --map, frames enter at their source host's port; ` +
          `${split.ref} is ignored`,
      );
    }
    const file = split ? split.file : spec;
    checkReadable(spec, file);
    return { index: k, path: file };
  });
  const map = mapSpec(topology);
  const canonical = (ref: string) => index.resolveInput(ref).ref;
  for (const vm of map.vms) {
    vm.port = canonical(vm.port);
    for (const ingress of [vm.fip, vm.snat]) if (ingress) ingress.port = canonical(ingress.port);
  }
  knowEndpoints(loaded.scenario, topology);
  return { scenarioFile, scenario: loaded.scenario, warnings, node: '', ports: [], inputs, map };
}

function planBench(scenarioFile: string, args: BenchArgs): BenchPlan {
  if (args.map) return planMapped(scenarioFile, args);
  const loaded = loadScenarioOrTopology(scenarioFile);
  const index = new PortIndex(loaded.scenario);
  const ports: PortInfo[] = [];
  const inputs = args.in.map((spec) => {
    const { ref, file } = splitInput(spec);
    let port: PortInfo;
    try {
      port = index.resolveInput(ref);
    } catch (e) {
      if (e instanceof PortRefError) throw new PortRefError(`--in ${spec}: ${e.message}`);
      throw e;
    }
    checkReadable(spec, file);
    const first = ports[0];
    if (first && first.node !== port.node) {
      throw new PortRefError(
        `--in ${spec}: ${port.ref} is on node ${port.node}, ${first.ref} on node ` +
          `${first.node}; a benchmark measures one node`,
      );
    }
    let at = ports.findIndex((p) => p.ref === port.ref);
    if (at < 0) at = ports.push(port) - 1;
    return { port, index: at, path: file };
  });
  return {
    scenarioFile,
    scenario: loaded.scenario,
    warnings: loaded.warnings,
    node: ports[0]?.node ?? '',
    ports,
    inputs,
  };
}

/** The directory holding `tools/ovs-oracle`, as the tests find it. */
function oraclePath(): string | undefined {
  if (process.env.DVRLAB_OVS_ORACLE) return process.env.DVRLAB_OVS_ORACLE;
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const shared = [process.env.DVRLAB_SHARED, path.resolve(root, '..', 'shared'), '/work/shared'];
  for (const s of shared) {
    if (s && existsSync(path.join(s, 'tools', 'ovs-oracle'))) {
      return path.join(s, 'tools', 'ovs-oracle');
    }
  }
  return undefined;
}

/** Runs the OVS oracle on the plan's scenario file and captures; a string says why not. */
function runOracle(plan: BenchPlan): OracleJson | string {
  if (!plan.scenario.oneNode) {
    return 'the OVS oracle runs one-node scenarios (top-level bridges[]) only';
  }
  const text = readFileSync(plan.scenarioFile, 'utf8');
  if (!plan.scenarioFile.endsWith('.json') && !text.trimStart().startsWith('{')) {
    return 'the OVS oracle takes JSON scenario files only';
  }
  const oracle = oraclePath();
  if (!oracle) return 'the OVS oracle (tools/ovs-oracle) is not available';
  const tmp = mkdtempSync(path.join(tmpdir(), 'dvrlab-bench-oracle-'));
  try {
    const args = ['run', '--config', plan.scenarioFile];
    for (const i of plan.inputs) {
      const p = i.port!;
      const name = p.kind === 'local' ? `${p.bridge}:LOCAL` : p.name;
      args.push('--in', `${name}=${i.path}`);
    }
    args.push('--out', tmp, '--no-capture', '--no-hex', '--perf');
    const r = spawnSync(oracle, args, { encoding: 'utf8', timeout: 1_800_000 });
    if (r.error) return `the OVS oracle did not run: ${r.error.message}`;
    if (r.status !== 0) {
      const last = `${r.stderr}\n${r.stdout}`.trim().split('\n').filter(Boolean).pop();
      return `the OVS oracle failed: ${last ?? `exit ${r.status}`}`;
    }
    const s = JSON.parse(readFileSync(path.join(tmp, 'stats.json'), 'utf8')) as {
      pps: number;
      seconds: number;
      packets_in: number;
      pmd_stats?: Record<string, Record<string, number>>;
      pmd_estimates?: Record<string, Record<string, number>>;
    };
    const pmds = Object.values(s.pmd_stats ?? {});
    const sum = (k: string) => pmds.reduce((a, p) => a + (p[k] ?? 0), 0);
    const dp = Object.values(s.pmd_estimates ?? {})
      .map((e) => e.datapath_only_pps_est)
      .find((v) => typeof v === 'number');
    return {
      packets: s.packets_in,
      seconds: s.seconds,
      pps: s.pps,
      datapath_pps: dp ?? null,
      emc_hits: sum('emc_hits'),
      megaflow_hits: sum('megaflow_hits'),
      upcalls: sum('miss_with_success_upcall'),
    };
  } catch (e) {
    return `the OVS oracle's results could not be read: ${(e as Error).message}`;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The CLI's entry point, for running the same benchmark in a child process. */
const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));

/**
 * Packets the callgrind run times at least, in forward mode, so that a small capture is
 * measured in its steady state (the EMC fills over many hits) rather than just after the
 * warm-up pass.
 */
const CALLGRIND_PACKETS = 100_000;

/**
 * Runs the same benchmark under callgrind in a child process, counting only
 * `bench_timed_loop` and what it calls; a string says why it could not. Setup mode times one
 * pass (every pass is the same cold pass); forward mode as many passes as make
 * `CALLGRIND_PACKETS` (one for a capture that large).
 */
function countInstructions(
  scenarioFile: string,
  args: BenchArgs,
  frames: number,
): InstructionsJson | string {
  const probe = spawnSync('valgrind', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return 'valgrind is not installed';
  const tmp = mkdtempSync(path.join(tmpdir(), 'dvrlab-bench-callgrind-'));
  try {
    const out = path.join(tmp, 'callgrind.out');
    const child = [CLI, 'bench', scenarioFile];
    for (const i of args.in) child.push('--in', i);
    if (args.map) child.push('--map');
    if (args.emcAlways) child.push('--emc-always');
    const passes = args.mode === 'setup' ? 1 : Math.ceil(CALLGRIND_PACKETS / frames);
    child.push('--mode', args.mode, '--passes', String(passes), '--min-seconds', '0', '--json');
    const r = spawnSync(
      'valgrind',
      [
        '--tool=callgrind',
        '--collect-atstart=no',
        '--toggle-collect=*bench_timed_loop*',
        `--callgrind-out-file=${out}`,
        process.execPath,
        ...child,
      ],
      { encoding: 'utf8', timeout: 3_600_000, maxBuffer: 1 << 26 },
    );
    if (r.error) return `callgrind did not run: ${r.error.message}`;
    if (r.status !== 0) {
      const last = r.stderr.trim().split('\n').filter(Boolean).pop();
      return `the callgrind run failed: ${last ?? `exit ${r.status}`}`;
    }
    const report = JSON.parse(r.stdout) as BenchReport;
    const totals = /^(?:totals|summary): (\d+)/m.exec(readFileSync(out, 'utf8'));
    if (!totals?.[1]) return 'callgrind wrote no instruction total';
    const total = Number(totals[1]);
    if (total === 0) return 'callgrind counted no instruction in bench_timed_loop';
    return { total, packets: report.packets, per_packet: total / report.packets };
  } catch (e) {
    return `the callgrind results could not be read: ${(e as Error).message}`;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** One node's figures, with what the report derives from them. */
function nodeFigures(
  node: string,
  ports: string[],
  workload: { frames: number; bytes: number },
  fig: BenchFramesJson,
): NodeBenchJson {
  return {
    node,
    ports,
    threads: fig.threads,
    frames: workload.frames,
    frame_bytes: workload.bytes,
    passes: fig.passes,
    packets: fig.packets,
    bytes: fig.bytes,
    seconds: fig.seconds,
    pps: fig.pps,
    ns_per_packet: fig.ns_per_packet,
    gbps: fig.packets > 0 ? (fig.pps * fig.bytes * 8) / fig.packets / 1e9 : 0,
    outputs: fig.outputs,
    delivered: fig.packets - fig.dropped,
    dropped: fig.dropped,
    emc_hits: fig.emc_hits,
    emc_hit_rate: fig.emc_hit_rate,
    emc_bypassed: fig.emc_bypassed,
    megaflow_hits: fig.megaflow_hits,
    megaflow_hit_rate: fig.megaflow_hit_rate,
    upcalls: fig.upcalls,
    upcall_rate: fig.upcall_rate,
    upcalls_per_pass: fig.passes > 0 ? fig.upcalls / fig.passes : 0,
    upcalls_per_second: fig.upcalls_per_second,
    megaflows: fig.megaflows,
    subtables: fig.subtables,
    conntrack: fig.conntrack,
    conntrack_new: fig.conntrack_new,
    conntrack_new_per_second: fig.conntrack_new_per_second,
  };
}

/**
 * Several nodes' figures added up: their benchmarks ran one after the other. A node measured
 * on several threads counts for the time its packets took at its rate (the sum of its
 * threads').
 */
function sumFigures(nodes: NodeBenchJson[]): Omit<NodeBenchJson, 'node'> {
  const sum = (k: keyof NodeBenchJson) => nodes.reduce((a, n) => a + (n[k] as number), 0);
  const packets = sum('packets');
  const seconds = nodes.reduce((a, n) => a + (n.pps > 0 ? n.packets / n.pps : n.seconds), 0);
  const per = (n: number, of: number) => (of > 0 ? n / of : 0);
  return {
    ports: nodes.flatMap((n) => n.ports),
    threads: [], // each node's are in nodes[]
    frames: sum('frames'),
    frame_bytes: sum('frame_bytes'),
    passes: Math.min(...nodes.map((n) => n.passes)),
    packets,
    bytes: sum('bytes'),
    seconds,
    pps: per(packets, seconds),
    ns_per_packet: per(seconds * 1e9, packets),
    gbps: per(sum('bytes') * 8, seconds) / 1e9,
    outputs: sum('outputs'),
    delivered: sum('delivered'),
    dropped: sum('dropped'),
    emc_hits: sum('emc_hits'),
    emc_hit_rate: per(sum('emc_hits'), packets),
    emc_bypassed: sum('emc_bypassed'),
    megaflow_hits: sum('megaflow_hits'),
    megaflow_hit_rate: per(sum('megaflow_hits'), packets),
    upcalls: sum('upcalls'),
    upcall_rate: per(sum('upcalls'), packets),
    upcalls_per_pass: sum('upcalls_per_pass'),
    upcalls_per_second: per(sum('upcalls'), seconds),
    megaflows: sum('megaflows'),
    subtables: sum('subtables'),
    conntrack: sum('conntrack'),
    conntrack_new: sum('conntrack_new'),
    conntrack_new_per_second: per(sum('conntrack_new'), seconds),
  };
}

/** Runs the benchmark and everything asked beside it; returns the report. */
export async function runBench(
  scenarioFile: string,
  args: BenchArgs,
  warn: (message: string) => void = () => undefined,
): Promise<BenchReport> {
  const plan = planBench(scenarioFile, args);
  for (const w of plan.warnings) warn(w);
  if (args.emcAlways) plan.scenario.emcAdaptive = false;
  const engine = new Engine(plan.scenario);
  const options = {
    mode: args.mode,
    passes: args.passes,
    minSeconds: args.minSeconds,
    threads: args.threads ?? 1,
  };
  const notes: string[] = [];
  let figures: Omit<NodeBenchJson, 'node'>;
  let node: string | null = plan.node;
  let nodes: NodeBenchJson[] | null = null;
  let map: BenchReport['map'] = null;
  let inputs: BenchInputJson[];
  let frames: number;
  if (plan.map) {
    const mapped = engine.loadMappedBenchFrames(
      plan.inputs.map((i) => i.path),
      plan.map,
    );
    map = { ...mapped.map, too_long: mapped.too_long };
    frames = mapped.nodes.reduce((a, n) => a + n.count, 0);
    if (frames === 0) {
      throw new FileError(
        `no frame to measure: none of the ${mapped.map.records} records of the captures ` +
          'could be mapped onto the topology',
      );
    }
    nodes = [];
    for (const n of mapped.nodes) {
      const fig = await engine.benchFrames({ ports: n.ports, ...options }, n.frames);
      nodes.push(nodeFigures(n.node, n.ports, { frames: n.count, bytes: n.bytes }, fig));
    }
    figures = sumFigures(nodes);
    node = null;
    inputs = plan.inputs.map((i) => ({ port: null, path: i.path }));
    if (mapped.too_long > 0) {
      notes.push(`${mapped.too_long} mapped frames longer than 65535 bytes left out`);
    }
  } else {
    const capture = loadBenchFrames(plan.inputs.map((i) => ({ path: i.path, port: i.index })));
    frames = capture.count;
    if (frames === 0) {
      const records = capture.inputs.reduce((a, i) => a + i.records, 0);
      throw new FileError(
        `no frame to measure: the captures hold ${records} records, none an Ethernet frame ` +
          'of 14 to 65535 bytes',
      );
    }
    const ports = plan.ports.map((p) => p.ref);
    const fig = await engine.benchFrames({ ports, ...options }, capture.frames);
    const bytes = capture.inputs.reduce((a, i) => a + i.bytes, 0);
    figures = nodeFigures(plan.node, ports, { frames, bytes }, fig);
    inputs = capture.inputs.map((c, k) => ({
      port: plan.inputs[k]!.port!.ref,
      path: plan.inputs[k]!.path,
      records: c.records,
      frames: c.frames,
      bytes: c.bytes,
      skipped: {
        unsupported_linktype: c.skipped.unsupported_linktype,
        runt: c.skipped.runt,
        too_long: c.skipped.too_long,
      },
    }));
    for (const [k, c] of capture.inputs.entries()) {
      const skipped = c.records - c.frames;
      if (skipped > 0) {
        const why = Object.entries(c.skipped)
          .filter(([, n]) => n > 0)
          .map(([r, n]) => `${n} ${r}`)
          .join(', ');
        notes.push(
          `${plan.inputs[k]!.path}: ${skipped} of ${c.records} records left out (${why})`,
        );
      }
    }
  }

  let nullFig: NullReplayJson | null = null;
  if (args.null) {
    const tmp = mkdtempSync(path.join(tmpdir(), 'dvrlab-bench-null-'));
    try {
      const n = await nullReplay({
        inputs: plan.inputs.map((i) => i.path),
        out: path.join(tmp, 'null.pcap'),
        passes: 1,
        minSeconds: args.minSeconds,
      });
      nullFig = {
        passes: n.passes,
        records: n.records,
        packets: n.packets,
        bytes: n.bytes,
        file_bytes: n.file_bytes,
        seconds: n.seconds,
        pps: n.pps,
        mb_per_second: n.mb_per_second,
        file_mb_per_second: n.file_mb_per_second,
      };
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  let oracle: OracleJson | null = null;
  if (args.oracle) {
    const o = plan.map ? 'the OVS oracle does not map captures (--map)' : runOracle(plan);
    if (typeof o === 'string') notes.push(`oracle: ${o}; skipped`);
    else oracle = o;
  }

  let instructions: InstructionsJson | null = null;
  if (args.instructions) {
    const n = countInstructions(scenarioFile, args, frames);
    if (typeof n === 'string') notes.push(`instructions: ${n}; skipped`);
    else instructions = n;
  }

  const { ports, ...rest } = figures;
  return {
    scenario: scenarioFile,
    node,
    mode: args.mode,
    ports,
    inputs,
    ...rest,
    nodes,
    map,
    instructions,
    null: nullFig,
    oracle,
    notes,
  };
}

/** A number with a unit prefix: 15.23 M, 812.4 k, 950. */
export function rate(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

/** Packets per second with a unit prefix: 15.23 Mpps, 950 pps. */
export function pps(n: number): string {
  const r = rate(n);
  return /[kMG]$/.test(r) ? `${r}pps` : `${r} pps`;
}

function pct(n: number, of: number): string {
  return of > 0 ? `${((100 * n) / of).toFixed(2)} %` : '0.00 %';
}

function secs(s: number): string {
  return s >= 1 ? s.toFixed(2) : s.toFixed(6);
}

/** The readable form of a report: one labelled line per figure. */
export function formatBench(r: BenchReport): string[] {
  const where = r.node ? `, node ${r.node}` : '';
  const lookups = r.emc_hits + r.megaflow_hits + r.upcalls;
  const rows: [string, string][] = [];
  if (r.map) {
    const m = r.map;
    const skipped = m.records - m.mapped;
    rows.push([
      'Map',
      `${m.records} records, ${m.mapped} mapped onto the topology, ${skipped} skipped; ` +
        `${m.hosts} hosts`,
    ]);
  }
  rows.push(
    ['Workload', `${r.frames} frames (${r.frame_bytes} bytes) on ${r.ports.join(', ')}`],
    [
      'Timed',
      `${r.passes} passes, ${r.packets} packets in ${secs(r.seconds)} s` +
        (r.mode === 'setup' ? ' (each pass from empty caches and conntrack)' : ' (warm caches)'),
    ],
  );
  for (const n of r.nodes ?? []) {
    rows.push([
      n.node,
      `${n.frames} frames, ${n.passes} passes: ${pps(n.pps)}, ${n.ns_per_packet.toFixed(1)} ` +
        `ns/packet, ${n.upcalls} upcalls, ${n.megaflows} megaflows`,
    ]);
  }
  rows.push([
    'Rate',
    `${pps(r.pps)}, ${r.ns_per_packet.toFixed(1)} ns/packet, ${r.gbps.toFixed(2)} Gbit/s`,
  ]);
  if (r.threads.length > 0) {
    rows.push([
      'Threads',
      `${r.threads.length}: ` +
        r.threads
          .map((t) => `${pps(t.pps)} (${t.packets / Math.max(1, t.passes)} frames)`)
          .join(', '),
    ]);
  }
  if (r.instructions) {
    rows.push([
      'Instructions',
      `${r.instructions.per_packet.toFixed(1)} per packet ` +
        `(callgrind, ${r.instructions.packets} packets)`,
    ]);
  }
  rows.push(
    [
      'Lookups',
      `${lookups} (${(lookups / Math.max(1, r.packets)).toFixed(2)} per packet: ` +
        'a recirculation looks up again)',
    ],
    ['EMC hits', `${r.emc_hits} (${pct(r.emc_hits, lookups)} of lookups)`],
    [
      'Megaflow hits',
      `${r.megaflow_hits} (${pct(r.megaflow_hits, lookups)} of lookups` +
        (r.emc_bypassed > 0
          ? `; ${r.emc_bypassed} in bursts that left the EMC out, as fewer than half of ` +
            'its probes hit)'
          : ')'),
    ],
    [
      'Upcalls',
      `${r.upcalls} (${pct(r.upcalls, lookups)} of lookups), ` +
        `${r.upcalls_per_pass.toFixed(0)} per pass, ${rate(r.upcalls_per_second)} setups/s`,
    ],
    ['Megaflows', `${r.megaflows} in ${r.subtables} subtables`],
    [
      'Conntrack',
      `${r.conntrack} entries, ${r.conntrack_new} new (${rate(r.conntrack_new_per_second)} new/s)`,
    ],
    [
      'Accounting',
      `${r.packets} packets = ${r.delivered} delivered + ${r.dropped} dropped; ` +
        `${r.outputs} frames out`,
    ],
  );
  if (r.null) {
    rows.push([
      'Null replay',
      `${pps(r.null.pps)}, ${r.null.mb_per_second.toFixed(1)} MB/s ` +
        '(read the captures, write a pcap, no forwarding)',
    ]);
  }
  if (r.oracle) {
    const o = r.oracle;
    const dp = o.datapath_pps;
    rows.push(
      [
        'OVS end to end',
        `${pps(o.pps)} (OVS 3.1 oracle; dvrlab in memory: ${(r.pps / o.pps).toFixed(1)}x)`,
      ],
      [
        'OVS PMD only',
        dp
          ? `${pps(dp)} estimated (dvrlab in memory: ${(r.pps / dp).toFixed(1)}x)`
          : 'no estimate',
      ],
    );
  }
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  const lines = [`dvrlab bench: ${r.scenario}${where}, ${r.mode} mode`];
  for (const [k, v] of rows) lines.push(`  ${`${k}:`.padEnd(width)}${v}`);
  for (const n of r.notes) lines.push(`  note: ${n}`);
  return lines;
}

/** Runs `dvrlab bench` and returns the exit code. */
export async function benchCommand(
  scenarioFile: string,
  args: BenchArgs,
  io: CliIo,
): Promise<number> {
  const report = await runBench(scenarioFile, args, (w) =>
    io.stderr.write(`dvrlab: warning: ${w}\n`),
  );
  if (args.json) io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else io.stdout.write(`${formatBench(report).join('\n')}\n`);
  return 0;
}
