/**
 * The TypeScript side of the native addon: the types of the JSON documents that cross the
 * boundary, and typed wrappers around the addon's `Engine`.
 *
 * The addon is loaded lazily, on the first call that needs it, so that commands which only
 * read scenarios or print help work before `npm install` has built it. The generated loader
 * is CommonJS (`native/index.js`, next to `native/package.json` which says so) and is
 * required through `createRequire`; from `dist/src/native.js` it is `../../native/index.js`.
 */
import { createRequire } from 'node:module';
import { AddonError, EngineError } from './errors.js';
import type { MapStatsJson, NativeMapSpec } from './neutron/map.js';

/** A normalised scenario, as the engine takes it. */
export interface NativeScenario {
  oneNode: boolean; // true for an ovs-oracle style scenario (top-level bridges[])
  nodes: NativeNode[]; // one-node: exactly one node with name ""
  /** The flows were installed over OpenFlow 1.0 only (ovs-oracle `ofctl_args`). */
  openflow10?: boolean;
  /** Most megaflows per node (OVS other_config:flow-limit); 1 Mi by default. */
  megaflowLimit?: number;
  /** Most conntrack connections per node (OVS dpctl/ct-set-maxconns); 3 M by default. */
  conntrackLimit?: number;
  /** Megaflows unused this many ms are removed (OVS other_config:max-idle). */
  maxIdle?: number;
  /** OVS other_config:emc-insert-inv-prob: EMC insertion probability 1/N; 0 disables the EMC. */
  emcInsertInvProb?: number;
  /**
   * Whether bursts leave the EMC out while fewer than half of its probes hit (default true);
   * false probes it for every packet, as OVS does.
   */
  emcAdaptive?: boolean;
}

/** Table limits a command line sets (replay and run). */
export interface LimitOptions {
  flowLimit?: number;
  maxIdle?: number;
  ctMax?: number;
}

/** Applies command-line table limits to a scenario; they win over the scenario file's. */
export function applyLimits(scenario: NativeScenario, o: LimitOptions): void {
  if (o.flowLimit !== undefined) scenario.megaflowLimit = o.flowLimit;
  if (o.maxIdle !== undefined) scenario.maxIdle = o.maxIdle;
  if (o.ctMax !== undefined) scenario.conntrackLimit = o.ctMax;
}

export interface NativeNode {
  name: string;
  underlay?: { ip: string; mac: string }; // multi-node: the node's underlay NIC
  bridges: NativeBridge[];
  routes: NativeRoute[]; // one-node: ovs/route/add
  neighbors: NativeNeighbor[]; // one-node: tnl/neigh/set
  mtu?: number;
  /** Router namespaces, passed through as written until the engine supports them. */
  namespaces?: unknown[];
}

export interface NativeRoute {
  prefix: string;
  dev: string;
  gw?: string;
}

export interface NativeNeighbor {
  dev: string;
  ip: string;
  mac: string;
}

export interface NativeBridge {
  name: string;
  mac?: string; // LOCAL port MAC (OVS other_config:hwaddr); underlay bridge MAC
  ip?: string; // "192.168.1.12/24": makes this bridge a native-tunnel underlay
  failMode: 'secure' | 'standalone';
  ports: NativePort[]; // without LOCAL: the engine adds it (65534, named after the bridge)
  flows: NativeFlow[];
}

/** One flow; `source` and `line` say where it was written, for error messages. */
export interface NativeFlow {
  text: string;
  source: string;
  line: number;
}

export interface NativePort {
  name: string;
  ofport: number;
  type: string; // internal | dummy | system | tap | patch | vxlan | uplink
  peer?: string; // patch
  options: Record<string, string>; // vxlan: remote_ip, local_ip, key, dst_port, ...
  tag?: number;
  trunks?: number[];
  vlanMode?: string;
  mtu?: number;
  vm?: string; // VM name when the port is a VM's port (multi-node)
}

/** A canonical port reference bound to a file. */
export interface PortFile {
  port: string;
  path: string;
}

export type SpeedMode = 'topspeed' | 'multiplier' | 'pps';

export interface NativeReplayOptions {
  inputs: PortFile[];
  outputs: PortFile[]; // a file is created when its port first emits
  loop: number; // 1 = once
  speed: { mode: SpeedMode; value: number };
  nsec: boolean; // nanosecond-resolution output pcaps
  limit?: number; // stop after N input packets
  tracePacket?: number; // trace the Nth input packet (1-based) with the run's state
  traceNames?: boolean;
  /** Trace each of these input packets (1-based) in the same run; see `PacketTraceJson`. */
  tracePackets?: number[];
  dumpMegaflows?: boolean; // return the megaflows left at the end (true = the -m form)
  flowsDir?: string; // write DIR/[NODE/]BRIDGE.flows there, with the run's counters
  /** `--map`: rewrite every frame for a topology and inject it at its source host's port. */
  map?: NativeMapSpec;
}

/** What a replay reports; the CLI writes it as DIR/stats.json. */
export interface StatsJson {
  packets_in: number;
  packets_out: number; // emitted frames: a flood counts each copy
  bytes_in: number;
  bytes_out: number;
  dropped: Record<string, number>; // reason -> packets
  queued?: number; // input packets waiting for a namespace's neighbour at the end (0 in replay)
  generated?: number; // frames the datapath made (ARP requests, ICMP errors), in packets_out
  carried?: number; // frames the underlay carried to another node (hops), in packets_out
  seconds: number;
  pps: number;
  emc_hits: number;
  /** Of megaflow_hits, those of bursts that left the EMC out, as it did not pay. */
  emc_bypassed: number;
  megaflow_hits: number;
  upcalls: number;
  megaflows: number; // live count at the end
  per_port: Record<string, { rx: number; tx: number }>;
  inputs: { port: string; path: string; packets: number; bytes: number }[];
  flows: number; // distinct 5-tuples seen
  unique_flow_packets: number;
  non_flow_packets: number;
  underlay?: UnderlayStatsJson; // live runs with a UDP underlay
  limits?: LimitsJson;
  /** False when an input could not be read to its end: the run stopped there (`error`). */
  complete?: boolean;
  error?: string;
  map?: MapStatsJson; // replay --map
}

/** The table limits of a run and what they did, summed over the nodes. */
export interface LimitsJson {
  megaflow_limit: number;
  max_idle_ms: number | null; // null: megaflows do not expire
  conntrack_limit: number;
  megaflows_refused: number; // not cached, the cache being full (the packet was still handled)
  megaflows_expired: number; // removed after max_idle_ms unused
  conntrack_refused: number; // commits refused, the table being full (ct_table_full drops)
  conntrack_expired: number;
}

/** What a live run forwards between (see `Engine.openLive`). */
export interface LiveSpec {
  taps: { port: string; ifname: string }[];
  /** Existing interfaces attached through libpcap. */
  ifaces?: { port: string; ifname: string }[];
  /** The node this process runs; the others are reached over the UDP underlay. */
  node?: string;
  /** Where this node's UDP underlay listens: IP:PORT, IP or PORT. */
  bind?: string;
  /** Where other nodes' underlays are. */
  peers?: { node: string; address: string }[];
  /** The control socket's path. */
  ctl?: string;
}

/** A live run's UDP underlay, in its stats. */
export interface UnderlayStatsJson {
  bind: string;
  datagrams_out: number;
  datagrams_in: number;
  not_udp: number;
  send_failed: number;
  peers: {
    name: string;
    tunnel_ip: string;
    address: string;
    sent: number;
    received: number;
    answering: boolean;
  }[];
}

/** The raw addon exports, as the contract defines them. */
interface RawEngine {
  replay(optionsJson: string): Promise<string>;
  trace(optionsJson: string): string;
  dumpFlows(optionsJson: string): string;
  show(optionsJson: string): string;
  bench(optionsJson: string): Promise<string>;
  benchFrames(optionsJson: string, data: Buffer): Promise<string>;
  loadMappedBenchFrames(optionsJson: string): { frames: Buffer[]; json: string };
  progress(): number[];
  cancel(): void;
  openLive(specJson: string): string;
  closeLive(): void;
  liveEvents(): string[];
  live(): Promise<string>;
}

/** An in-memory benchmark: one capture, held in memory, replayed `passes` times through the
 * node of `port`; the first pass warms the caches and is not timed. */
export interface NativeBenchOptions {
  port: string;
  path: string;
  passes: number;
}

/** What to trace: a flow in ovs-ofctl syntax on a bridge, or a packet. */
export interface NativeTraceOptions {
  bridge: string; // NODE/BRIDGE, or BRIDGE in a one-node scenario
  flow: string;
  packet?: number[];
  pcap?: string;
  index?: number;
  follow?: boolean;
  names?: boolean;
  explain?: boolean;
}

/** A trace: the ofproto/trace text and its structured form. */
export interface TraceJson {
  text: string;
  trace: { passes: unknown[]; outputs: { port: string; bytes: number; hex: string }[] };
}

/** The fields of a flow the trace keeps where it enters a bridge or namespace. */
export interface TraceFlowJson {
  in_port: number;
  dl_src: string;
  dl_dst: string;
  dl_vlan: number | null; // outer VLAN ID, null when untagged
  dl_type: number;
  nw_src: string; // IPv4 source, or the ARP sender address
  nw_dst: string;
  nw_ttl: number;
  nw_proto: number; // IP protocol, or the ARP opcode
  tp_src: number; // L4 source port, or the ICMP type
  tp_dst: number;
  arp_sha: string;
  arp_tha: string;
  tun_id: number | null; // null when the packet did not come through a tunnel
  tun_src: string | null;
  tun_dst: string | null;
  ct_state: string;
}

/** One node of a trace tree (`dvrlab trace --json`). */
export interface TraceNodeJson {
  type: 'bridge' | 'table' | 'thaw' | 'action' | 'detail' | 'warn' | 'error';
  text: string;
  children: TraceNodeJson[];
  flow?: TraceFlowJson; // bridges and namespaces: the flow they were entered with
  emitted?: { port: string; flow: TraceFlowJson }[]; // bridges: ports the packet left by
}

/** One pass of a traced packet through a node's datapath. */
export interface TracePassJson {
  node: string;
  pass:
    | { kind: 'received' }
    | { kind: 'recirculated'; recirc_id: number; ct_state: string; ct_zone: number }
    | { kind: 'decapsulated'; tun_id: number; tun_src: string; tun_dst: string }
    | { kind: 'generated'; recirc_id: number }
    | { kind: 'released'; recirc_id: number };
  flow: string;
  final_flow: string;
  megaflow: string;
  datapath_actions: string;
  datapath_actions_names: string;
  drop: string | null;
  explain: string[];
  trace: TraceNodeJson[];
}

/** The structured form of a trace: every pass, and the frames that left. */
export interface TraceReportJson {
  passes: TracePassJson[];
  outputs: { port: string; bytes: number; hex: string }[];
}

/** The trace of one input packet of a replay (`tracePackets`) and what became of it. */
export interface PacketTraceJson {
  packet: number; // 1-based index in the run
  port: string; // the input port, canonical
  drop: string | null; // the drop reason, or null when it was emitted somewhere
  trace: TraceReportJson;
}

/** What a benchmark run reports (timed passes only). */
export interface BenchJson {
  packets: number;
  bytes: number;
  outputs: number;
  seconds: number;
  pps: number;
  ns_per_packet: number;
  emc_hits: number;
  /** Of megaflow_hits, those of bursts that left the EMC out, as it did not pay. */
  emc_bypassed: number;
  megaflow_hits: number;
  upcalls: number;
  megaflows: number;
  dropped: number;
  emc_hit_rate: number;
  megaflow_hit_rate: number;
  upcall_rate: number;
}

/**
 * An in-memory benchmark of frames on one node (`Engine.benchFrames`): `data` holds records
 * `[u16 LE port index][u16 0][u32 LE length][frame]`, the index into `ports`.
 */
export interface BenchFramesOptions {
  ports: string[]; // canonical port references, all on one node
  mode?: 'forward' | 'setup'; // forward: warm caches; setup: every pass starts cold
  passes?: number; // default 3
  minSeconds?: number; // forward: time passes for at least this long (default 1)
  threads?: number; // each with a datapath of its own and a share of the flows (default 1)
}

/** One thread's figures in a benchmark on several threads. */
export interface BenchThreadJson {
  packets: number;
  seconds: number;
  passes: number;
  pps: number;
  upcalls: number;
  megaflows: number;
}

/** What `benchFrames` reports (timed passes only). */
export interface BenchFramesJson {
  threads: BenchThreadJson[]; // empty on one thread
  packets: number;
  bytes: number;
  outputs: number;
  dropped: number;
  seconds: number;
  passes: number;
  pps: number;
  ns_per_packet: number;
  emc_hits: number;
  /** Of megaflow_hits, those of bursts that left the EMC out, as it did not pay. */
  emc_bypassed: number;
  megaflow_hits: number;
  upcalls: number;
  emc_hit_rate: number;
  megaflow_hit_rate: number;
  upcall_rate: number;
  upcalls_per_second: number;
  megaflows: number;
  subtables: number;
  conntrack: number;
  conntrack_new: number;
  conntrack_new_per_second: number;
}

/** What became of the records of one capture loaded for a benchmark. */
export interface CaptureCountsJson {
  records: number;
  frames: number; // records kept
  bytes: number; // bytes of the frames kept
  skipped: { unsupported_linktype: number; runt: number; too_long: number };
}

/** Captures loaded for `benchFrames`: the packed frames and the counts of each input. */
export interface BenchCapture {
  frames: Buffer;
  count: number;
  inputs: CaptureCountsJson[];
}

/**
 * Reads captures into memory, merged in timestamp order (ties to the input given first),
 * packed for `Engine.benchFrames`; `port` is each input's index into the benchmark's ports.
 * Records that are not Ethernet frames of 14 to 65535 bytes are left out and counted.
 */
export function loadBenchFrames(inputs: { path: string; port: number }[]): BenchCapture {
  let raw: { frames: Buffer; json: string };
  try {
    raw = loadAddon().loadBenchFrames(JSON.stringify({ inputs }));
  } catch (e) {
    if (e instanceof AddonError) throw e;
    throw new EngineError((e as Error).message);
  }
  const j = JSON.parse(raw.json) as { frames: number; inputs: CaptureCountsJson[] };
  return { frames: raw.frames, count: j.frames, inputs: j.inputs };
}

/** The mapped frames that enter one node (`Engine.loadMappedBenchFrames`). */
export interface MappedNodeFrames {
  node: string;
  ports: string[]; // canonical references; the packed records name them by index
  frames: Buffer; // packed for `benchFrames`
  count: number;
  bytes: number;
}

/** Captures mapped onto a topology for a benchmark, node by node. */
export interface MappedBenchCapture {
  nodes: MappedNodeFrames[];
  too_long: number; // mapped frames longer than 65535 bytes, left out
  map: MapStatsJson;
}

/** Options of a null replay: read captures and write their frames to a pcap, no datapath. */
export interface NullReplayOptions {
  inputs: string[];
  out: string;
  passes?: number; // at least this many (default 1)
  minSeconds?: number; // keep timing passes for at least this long (default 0)
}

/** What a null replay measured. */
export interface NullReplayJson {
  passes: number;
  records: number;
  packets: number; // frames written
  bytes: number; // bytes of the frames written
  file_bytes: number; // bytes of the captures read
  seconds: number;
  pps: number;
  mb_per_second: number; // frame bytes, 10^6 per second
  file_mb_per_second: number;
}

/** The file I/O ceiling of a replay, on an engine thread. */
export async function nullReplay(options: NullReplayOptions): Promise<NullReplayJson> {
  const addon = loadAddon();
  let text: string;
  try {
    text = await addon.nullReplay(JSON.stringify(options));
  } catch (e) {
    throw new EngineError((e as Error).message);
  }
  return JSON.parse(text) as NullReplayJson;
}

/** Packs frames for `benchFrames`. */
export function packBenchFrames(frames: { port: number; frame: Buffer }[]): Buffer {
  let size = 0;
  for (const f of frames) size += 8 + f.frame.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const f of frames) {
    out.writeUInt16LE(f.port, at);
    out.writeUInt16LE(0, at + 2);
    out.writeUInt32LE(f.frame.length, at + 4);
    f.frame.copy(out, at + 8);
    at += 8 + f.frame.length;
  }
  return out;
}

interface RawAddon {
  Engine: new (scenarioJson: string) => RawEngine;
  version(): string;
  loadBenchFrames(optionsJson: string): { frames: Buffer; json: string };
  nullReplay(optionsJson: string): Promise<string>;
}

let addon: RawAddon | undefined;

/** The path of the generated loader, relative to this module once compiled to dist/src. */
const LOADER = '../../native/index.js';

/** Loads the addon once; throws `AddonError` telling the user to build it when it is absent. */
export function loadAddon(): RawAddon {
  if (addon) return addon;
  const require = createRequire(import.meta.url);
  let loaded: unknown;
  try {
    loaded = require(LOADER);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const detail = err.code === 'MODULE_NOT_FOUND' ? 'it is not built' : err.message;
    throw new AddonError(`cannot load the native engine (${detail}); run npm install`);
  }
  const candidate = loaded as Partial<RawAddon>;
  if (typeof candidate.Engine !== 'function' || typeof candidate.version !== 'function') {
    throw new AddonError(
      'the native engine does not export Engine and version(); run npm install',
    );
  }
  addon = candidate as RawAddon;
  return addon;
}

/** The engine's version string. */
export function nativeVersion(): string {
  return loadAddon().version();
}

/** Progress of a running replay; `total` is 0 while unknown. */
export interface Progress {
  done: number;
  total: number;
}

/** A datapath built from a scenario, ready to replay captures. */
export class Engine {
  private readonly raw: RawEngine;

  /** Builds the datapath; scenario mistakes the engine finds become `EngineError`s. */
  constructor(scenario: NativeScenario) {
    const { Engine: RawEngineClass } = loadAddon();
    try {
      this.raw = new RawEngineClass(JSON.stringify(scenario));
    } catch (e) {
      throw new EngineError((e as Error).message);
    }
  }

  /** Runs a replay to completion on an engine thread. */
  async replay(options: NativeReplayOptions): Promise<StatsJson> {
    let text: string;
    try {
      text = await this.raw.replay(JSON.stringify(options));
    } catch (e) {
      throw new EngineError((e as Error).message);
    }
    return JSON.parse(text) as StatsJson;
  }

  /**
   * Opens what the next `live` run forwards between: TAP devices on ports (created in this
   * network namespace; they may be moved to another and keep working), the UDP underlay of
   * the node this process runs, and the control socket. Returns each TAP's canonical port
   * reference and the underlay's address and peers.
   */
  openLive(spec: LiveSpec): {
    taps: string[];
    ifaces: string[];
    underlay: UnderlayStatsJson | null;
  } {
    try {
      return JSON.parse(this.raw.openLive(JSON.stringify(spec))) as {
        taps: string[];
        ifaces: string[];
        underlay: UnderlayStatsJson | null;
      };
    } catch (e) {
      throw new EngineError((e as Error).message);
    }
  }

  /** Closes what `openLive` opened and no live run took. */
  closeLive(): void {
    this.raw.closeLive();
  }

  /** Reports of the running live run (tunnel peers silent or unreachable) since the last call. */
  liveEvents(): string[] {
    return this.raw.liveEvents();
  }

  /** Forwards between the open TAP devices until `stop()`; resolves with the counters. */
  async live(): Promise<StatsJson & { errors?: string[] }> {
    let text: string;
    try {
      text = await this.raw.live();
    } catch (e) {
      throw new EngineError((e as Error).message);
    }
    return JSON.parse(text) as StatsJson & { errors?: string[] };
  }

  /** Stops a running replay or live run. */
  stop(): void {
    this.raw.cancel();
  }

  /** Traces one packet through the real datapath (see NativeTraceOptions). */
  trace(options: NativeTraceOptions): TraceJson {
    try {
      return JSON.parse(this.raw.trace(JSON.stringify(options))) as TraceJson;
    } catch (e) {
      throw new EngineError((e as Error).message);
    }
  }

  /** ovs-ofctl dump-flows of one bridge: the text, and the flows as records. */
  dumpFlows(options: { bridge: string; filter: string; stats: boolean; names: boolean }): {
    text: string;
    flows: unknown[];
  } {
    try {
      return JSON.parse(this.raw.dumpFlows(JSON.stringify(options))) as {
        text: string;
        flows: unknown[];
      };
    } catch (e) {
      throw new EngineError((e as Error).message);
    }
  }

  /** ovs-vsctl show (or ovs-ofctl show BRIDGE with `ofctl`). */
  show(options: { ofctl?: string }): { text: string; ports: unknown[] } {
    try {
      return JSON.parse(this.raw.show(JSON.stringify(options))) as {
        text: string;
        ports: unknown[];
      };
    } catch (e) {
      throw new EngineError((e as Error).message);
    }
  }

  /** Runs an in-memory benchmark on an engine thread. */
  async bench(options: NativeBenchOptions): Promise<BenchJson> {
    let text: string;
    try {
      text = await this.raw.bench(JSON.stringify(options));
    } catch (e) {
      throw new EngineError((e as Error).message);
    }
    return JSON.parse(text) as BenchJson;
  }

  /**
   * Reads captures, merged in timestamp order, and maps them onto the topology as
   * `replay --map` does (`spec`, with canonical port references); returns the frames of
   * each node that receives some, packed for `benchFrames`.
   */
  loadMappedBenchFrames(inputs: string[], spec: NativeMapSpec): MappedBenchCapture {
    let raw: { frames: Buffer[]; json: string };
    try {
      raw = this.raw.loadMappedBenchFrames(JSON.stringify({ inputs, map: spec }));
    } catch (e) {
      throw new EngineError((e as Error).message);
    }
    const j = JSON.parse(raw.json) as {
      nodes: { node: string; ports: string[]; frames: number; bytes: number }[];
      too_long: number;
      map: MapStatsJson;
    };
    return {
      nodes: j.nodes.map((n, k) => ({
        node: n.node,
        ports: n.ports,
        frames: raw.frames[k]!,
        count: n.frames,
        bytes: n.bytes,
      })),
      too_long: j.too_long,
      map: j.map,
    };
  }

  /** Runs an in-memory benchmark of packed frames on an engine thread. */
  async benchFrames(options: BenchFramesOptions, data: Buffer): Promise<BenchFramesJson> {
    let text: string;
    try {
      text = await this.raw.benchFrames(JSON.stringify(options), data);
    } catch (e) {
      throw new EngineError((e as Error).message);
    }
    return JSON.parse(text) as BenchFramesJson;
  }

  progress(): Progress {
    const [done = 0, total = 0] = this.raw.progress();
    return { done, total };
  }
}
