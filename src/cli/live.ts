/**
 * Live mode: `dvrlab run` forwards between TAP devices attached to ports of a scenario, and
 * `dvrlab lab up` builds a lab around them: a network namespace per VM (named after the VM,
 * with its MAC, address, default route and MTU) and one named `outside` holding the external
 * network's gateway and a few hosts of the Internet, all attached by TAP. The forwarding loop
 * runs in the engine (Rust); this module only sets the lab up, waits for a signal and takes
 * down exactly what it made.
 *
 * A lab's TAP devices are made persistent, inside their namespaces (`ip -n NS tuntap add`),
 * and the engine attaches to them as `NS/IFNAME`: a node process that dies leaves its VMs'
 * interfaces configured, and the same `dvrlab run --node` command line, run again, attaches
 * to them and forwards again. Faults (a device or namespace deleted, a node process that
 * exits, a tunnel peer that stops answering) are reported on stderr and the rest goes on.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { DvrlabError, PortRefError, UsageError } from '../errors.js';
import { applyLimits, Engine, type LiveSpec, type StatsJson } from '../native.js';
import { loadScenarioOrTopology, loadTopologyArgument } from '../neutron/load.js';
import type { Topology } from '../neutron/topology.js';
import { PortIndex } from '../scenario/ports.js';
import type { CliIo } from './replay.js';

/** A failure of a system command the lab needs (`ip`, `sysctl`). */
export class LabError extends DvrlabError {
  constructor(message: string) {
    super('E_LAB', message);
  }
}

/** The external gateway's MAC in the `outside` namespace. */
export const OUTSIDE_MAC = '02:24:04:00:00:01';
/** Hosts of the Internet the `outside` namespace answers for. */
export const OUTSIDE_HOSTS = ['8.8.8.8', '1.1.1.1', '198.51.100.9'];

const STATE_DIR = '/run/dvrlab';

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.error) throw new LabError(`ip ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new LabError(`ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.status}`}`);
  }
}

function nsExec(ns: string, cmd: string[]): void {
  ip(['netns', 'exec', ns, ...cmd]);
}

/** Turns IPv6 off in `ns`: the lab is IPv4, and router solicitations would only be noise. */
function disableIpv6(ns: string): void {
  for (const scope of ['all', 'default']) {
    nsExec(ns, ['sysctl', '-qw', `net.ipv6.conf.${scope}.disable_ipv6=1`]);
  }
}

function namespaceExists(ns: string): boolean {
  return existsSync(path.join('/run/netns', ns));
}

/** One namespace of the lab and how it is attached: its TAP devices (`ifname` inside the
 * namespace). */
interface LabHost {
  ns: string;
  taps: { port: string; ifname: string }[];
  configure: () => void;
}

/** How the engine names a lab's TAP: inside its namespace. */
function labTaps(hosts: LabHost[]): { port: string; ifname: string }[] {
  return hosts.flatMap((h) =>
    h.taps.map((t) => ({ port: t.port, ifname: `${h.ns}/${t.ifname}` })),
  );
}

/** A TAP name unique on the host: `dl-` + a short tag, at most 15 characters. */
function tapName(tag: string): string {
  return `dl-${tag}`.slice(0, 15);
}

function prefixLen(cidr: string): number {
  return Number(cidr.split('/')[1]);
}

/** The namespaces and TAP devices of a lab for `topo`. */
export function planLab(topo: Topology, index: PortIndex): LabHost[] {
  const hosts: LabHost[] = [];
  for (const vm of topo.vms) {
    const v4 = vm.port.fixedIps.find((f) => f.subnet.family === 4);
    if (!v4) continue;
    const mtu = vm.network.mtu;
    const gw = v4.subnet.gatewayIp;
    hosts.push({
      ns: vm.name,
      taps: [{ port: index.resolveInput(vm.name).ref, ifname: 'eth0' }],
      configure: () => {
        const n = vm.name;
        disableIpv6(n);
        ip(['-n', n, 'link', 'set', 'dev', 'eth0', 'address', vm.port.mac, 'mtu', String(mtu)]);
        ip(['-n', n, 'addr', 'add', `${v4.ip}/${prefixLen(v4.subnet.cidr)}`, 'dev', 'eth0']);
        ip(['-n', n, 'link', 'set', 'dev', 'lo', 'up']);
        ip(['-n', n, 'link', 'set', 'dev', 'eth0', 'up']);
        if (gw) ip(['-n', n, 'route', 'add', 'default', 'via', gw]);
      },
    });
  }
  const ext = topo.networks.find((n) => n.external);
  const extSubnet = ext?.subnets.find((s) => s.family === 4);
  if (ext && extSubnet?.gatewayIp) {
    const uplinks: { port: string; ifname: string }[] = [];
    for (const node of topo.nodes) {
      const ref = `${node.name}/uplink`;
      let canonical: string;
      try {
        canonical = index.resolveInput(ref).ref;
      } catch (e) {
        if (e instanceof PortRefError) continue;
        throw e;
      }
      uplinks.push({ port: canonical, ifname: tapName(`up-${node.name}`) });
    }
    if (uplinks.length > 0) {
      const gwAddr = `${extSubnet.gatewayIp}/${prefixLen(extSubnet.cidr)}`;
      hosts.push({
        ns: 'outside',
        taps: uplinks,
        configure: () => {
          const n = 'outside';
          disableIpv6(n);
          ip(['-n', n, 'link', 'add', 'br-ext', 'type', 'bridge']);
          ip(['-n', n, 'link', 'set', 'dev', 'br-ext', 'address', OUTSIDE_MAC]);
          for (const u of uplinks) {
            ip(['-n', n, 'link', 'set', 'dev', u.ifname, 'master', 'br-ext', 'up']);
          }
          ip(['-n', n, 'addr', 'add', gwAddr, 'dev', 'br-ext']);
          ip(['-n', n, 'link', 'set', 'dev', 'br-ext', 'up']);
          ip(['-n', n, 'link', 'set', 'dev', 'lo', 'up']);
          for (const h of OUTSIDE_HOSTS) ip(['-n', n, 'addr', 'add', `${h}/32`, 'dev', 'lo']);
        },
      });
    }
  }
  return hosts;
}

/** Lab commands create and delete network namespaces: root only. */
function needRoot(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new LabError(
      `${what} needs root (it creates and removes network namespaces and TAP devices)`,
    );
  }
}

function stateFile(scenario: string): string {
  return path.join(STATE_DIR, `lab-${path.basename(scenario).replace(/[^\w.-]/g, '_')}.json`);
}

/** Removes the namespaces a lab recorded; returns those removed. */
function teardown(namespaces: string[]): string[] {
  const removed: string[] = [];
  for (const ns of namespaces) {
    if (!namespaceExists(ns)) continue;
    ip(['netns', 'del', ns]);
    removed.push(ns);
  }
  return removed;
}

/** Waits for SIGINT or SIGTERM. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string) => () => {
      process.off('SIGINT', int);
      process.off('SIGTERM', term);
      resolve(sig);
    };
    const int = on('SIGINT');
    const term = on('SIGTERM');
    process.on('SIGINT', int);
    process.on('SIGTERM', term);
  });
}

/** Waits until a signal (then stops the engine) or the end of the live run. */
async function untilStopped(
  engine: Engine,
  running: Promise<StatsJson & { errors?: string[] }>,
): Promise<StatsJson & { errors?: string[] }> {
  const sig = await Promise.race([untilSignal(), running.then(() => 'ended')]);
  if (sig !== 'ended') engine.stop();
  return running;
}

function printCounters(io: CliIo, stats: StatsJson & { errors?: string[] }): void {
  const dropped = Object.entries(stats.dropped ?? {}).filter(([, n]) => n > 0);
  io.stdout.write(
    `stopped: ${stats.packets_in} frames in, ${(stats as { delivered?: number }).delivered ?? 0} delivered, ` +
      `${dropped.reduce((a, [, n]) => a + n, 0)} dropped, ${stats.queued ?? 0} queued, ` +
      `${stats.packets_out} frames out (${stats.generated ?? 0} generated)\n`,
  );
  for (const [r, n] of dropped.sort()) io.stdout.write(`  ${r}: ${n}\n`);
  for (const [p, c] of Object.entries(stats.per_port ?? {}).sort()) {
    const dropped = (c as { tx_dropped?: number }).tx_dropped;
    io.stdout.write(`  ${p}: rx ${c.rx}, tx ${c.tx}${dropped ? `, tx_dropped ${dropped}` : ''}\n`);
  }
  const u = stats.underlay;
  if (u) {
    io.stdout.write(
      `  underlay ${u.bind}: ${u.datagrams_out} datagrams out, ${u.datagrams_in} in` +
        (u.not_udp ? `, ${u.not_udp} frames not UDP (not sent)` : '') +
        (u.send_failed ? `, ${u.send_failed} sends failed` : '') +
        '\n',
    );
    for (const p of u.peers) {
      io.stdout.write(
        `    peer ${p.name} (${p.tunnel_ip}) at ${p.address}: sent ${p.sent}, received ` +
          `${p.received}${p.answering ? '' : ', not answering'}\n`,
      );
    }
  }
  for (const e of stats.errors ?? []) io.stdout.write(`  fault: ${e}\n`);
}

/** Options of `dvrlab run`. */
export interface RunOptions {
  tap: string[];
  iface: string[];
  node?: string;
  /** `IP:PORT` (this node) or `NODE=IP:PORT` (where another node is). */
  underlay: string[];
  ctl?: string;
  flowLimit?: number;
  maxIdle?: number;
  ctMax?: number;
}

/** Splits `--tap PORTREF=IFNAME` values. */
function portAssignments(flag: string, values: string[], index: PortIndex) {
  return values.map((t) => {
    const eq = t.indexOf('=');
    if (eq <= 0 || eq === t.length - 1) {
      throw new UsageError(`${flag} ${t}: expected PORTREF=IFNAME`);
    }
    const port = index.resolveInput(t.slice(0, eq)).ref;
    return { port, ifname: t.slice(eq + 1) };
  });
}

/** The live spec of `dvrlab run`'s options. */
export function liveSpec(opts: RunOptions, index: PortIndex): LiveSpec {
  const spec: LiveSpec = {
    taps: portAssignments('--tap', opts.tap, index),
    ifaces: portAssignments('--iface', opts.iface, index),
    peers: [],
  };
  if (opts.node !== undefined) spec.node = opts.node;
  if (opts.ctl !== undefined) spec.ctl = path.resolve(opts.ctl);
  for (const u of opts.underlay) {
    const eq = u.indexOf('=');
    if (eq === 0 || eq === u.length - 1) {
      throw new UsageError(`--underlay ${u}: expected IP:PORT or NODE=IP:PORT`);
    }
    if (eq < 0 || u.slice(0, eq) === opts.node) {
      if (spec.bind !== undefined) {
        throw new UsageError(`--underlay ${u}: this node's address is given twice`);
      }
      spec.bind = eq < 0 ? u : u.slice(eq + 1);
    } else {
      spec.peers!.push({ node: u.slice(0, eq), address: u.slice(eq + 1) });
    }
  }
  return spec;
}

/** Prints the live run's reports (tunnel peers that stop answering) as they come. */
function watchEvents(engine: Engine, io: CliIo): () => void {
  const flush = () => {
    for (const e of engine.liveEvents()) io.stderr.write(`dvrlab: ${e}\n`);
  };
  const timer = setInterval(flush, 500);
  return () => {
    clearInterval(timer);
    flush();
  };
}

/** `dvrlab run SCENARIO --tap PORTREF=IFNAME... [--node NAME --underlay ...] [--ctl S]`. */
export async function runCommand(scenario: string, opts: RunOptions, io: CliIo): Promise<number> {
  if (
    opts.tap.length === 0 &&
    opts.iface.length === 0 &&
    opts.node === undefined &&
    opts.underlay.length === 0
  ) {
    throw new UsageError(
      'run: give at least one --tap or --iface PORTREF=IFNAME, or --node NAME for a node on ' +
        'the UDP underlay',
    );
  }
  const loaded = loadScenarioOrTopology(scenario);
  applyLimits(loaded.scenario, opts);
  const index = new PortIndex(loaded.scenario);
  const spec = liveSpec(opts, index);
  const engine = new Engine(loaded.scenario);
  const opened = engine.openLive(spec);
  const running = engine.live();
  const stopWatching = watchEvents(engine, io);
  spec.taps.forEach((t, i) => io.stdout.write(`${t.ifname} -> ${opened.taps[i]}\n`));
  spec.ifaces!.forEach((t, i) =>
    io.stdout.write(`${t.ifname} (libpcap) -> ${opened.ifaces[i]}\n`),
  );
  if (opened.underlay) {
    const u = opened.underlay;
    const peers = u.peers.map((p) => `${p.name} (${p.tunnel_ip}) at ${p.address}`);
    io.stdout.write(
      `${spec.node ?? 'underlay'}: VXLAN over UDP on ${u.bind}` +
        (peers.length ? `; peers ${peers.join(', ')}` : '') +
        '\n',
    );
  }
  if (spec.ctl) io.stdout.write(`control socket ${spec.ctl}\n`);
  io.stdout.write('ready\n');
  let stats: StatsJson & { errors?: string[] };
  try {
    stats = await untilStopped(engine, running);
  } finally {
    stopWatching();
  }
  printCounters(io, stats);
  return 0;
}

/** The loopback address a node's process listens on in a lab of one process per node. */
export function labUnderlayAddress(i: number): string {
  return `127.0.1.${i + 1}:4789`;
}

/** One `dvrlab run --node` child of a lab with one process per node. */
interface NodeProcess {
  node: string;
  /** The command line it runs, to start it again with (program first). */
  argv: string[];
  child: ChildProcess;
  out: string;
  exited: Promise<string>;
}

/** A command line as a shell would take it back. */
function shellQuote(argv: string[]): string {
  return argv
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

/** How a child process ended, in words. */
function howEnded(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exit ${code}`;
}

/** Starts `dvrlab run --node NODE` for every node, each with the TAPs of its ports, on the
 * UDP underlay over loopback; resolves once every one is ready. */
async function startNodeProcesses(
  scenario: string,
  nodes: string[],
  taps: { port: string; ifname: string }[],
  io: CliIo,
): Promise<NodeProcess[]> {
  const procs: NodeProcess[] = [];
  const cli = path.resolve(process.argv[1]);
  // A scenario file is named by its absolute path: the command line works from anywhere.
  const where = existsSync(scenario) ? path.resolve(scenario) : scenario;
  for (const [i, node] of nodes.entries()) {
    const args = [cli, 'run', where, '--node', node, '--underlay', labUnderlayAddress(i)];
    nodes.forEach((other, j) => {
      if (j !== i) args.push('--underlay', `${other}=${labUnderlayAddress(j)}`);
    });
    for (const t of taps.filter((t) => t.port.startsWith(`${node}/`))) {
      args.push('--tap', `${t.port}=${t.ifname}`);
    }
    // In its own process group: Ctrl-C reaches the lab, which stops the nodes in order.
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const p: NodeProcess = {
      node,
      argv: [process.execPath, ...args],
      child,
      out: '',
      exited: new Promise((resolve) =>
        child.on('exit', (code, signal) => resolve(howEnded(code, signal))),
      ),
    };
    child.stdout!.on('data', (d: Buffer) => (p.out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n').filter(Boolean)) {
        io.stderr.write(`${node}: ${line}\n`);
      }
    });
    procs.push(p);
  }
  try {
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve, reject) => {
            const check = () => /^ready$/m.test(p.out) && resolve();
            p.child.stdout!.on('data', check);
            check();
            void p.exited.then((how) =>
              reject(new LabError(`the process of ${p.node} ended (${how}) before it was ready`)),
            );
          }),
      ),
    );
  } catch (e) {
    await stopNodeProcesses(procs);
    throw e;
  }
  return procs;
}

/** The processes running exactly one of `commands` (a node started again by hand). */
function processesRunning(commands: string[][]): number[] {
  const wanted = new Set(commands.map((c) => c.join('\0') + '\0'));
  const found: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return found;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (wanted.has(readFileSync(`/proc/${e}/cmdline`, 'utf8'))) found.push(Number(e));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** Sends SIGTERM to `pids` and waits (at most 10 s) until they are gone. */
async function stopPids(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // Gone already.
    }
  }
  const deadline = Date.now() + 10_000;
  while (pids.some((p) => existsSync(`/proc/${p}`)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Stops the lab's node processes: its children, and any started again by hand since. */
async function stopNodeProcesses(procs: NodeProcess[]): Promise<void> {
  for (const p of procs) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  }
  await Promise.all(procs.map((p) => p.exited));
  await stopPids(processesRunning(procs.map((p) => p.argv)));
}

/** `dvrlab lab up SCENARIO [--processes]`: builds the lab, forwards until a signal, takes it
 * down. With `processes`, every node runs in its own `dvrlab run --node` process and the
 * nodes exchange real VXLAN over UDP on loopback; a node process that ends is reported with
 * the command line that starts it again, and the other nodes go on. */
export async function labUp(
  scenario: string,
  io: CliIo,
  opts: { processes?: boolean } = {},
): Promise<number> {
  needRoot('lab up');
  const topo = loadTopologyArgument(scenario);
  const loaded = loadScenarioOrTopology(scenario);
  const index = new PortIndex(loaded.scenario);
  const hosts = planLab(topo, index);
  const taken = hosts.filter((h) => namespaceExists(h.ns)).map((h) => h.ns);
  if (taken.length > 0) {
    throw new LabError(
      `network namespaces ${taken.join(', ')} exist already ` +
        `(\`dvrlab lab down ${scenario}\` removes a lab left behind)`,
    );
  }
  const taps = labTaps(hosts);
  const engine = opts.processes ? undefined : new Engine(loaded.scenario);
  let procs: NodeProcess[] = [];
  const created: string[] = [];
  const state = stateFile(scenario);
  mkdirSync(STATE_DIR, { recursive: true, mode: 0o700 });
  const record = () =>
    writeFileSync(
      state,
      JSON.stringify({
        namespaces: created,
        processes: procs.map((p) => p.child.pid),
        nodes: procs.map((p) => ({ node: p.node, pid: p.child.pid, argv: p.argv })),
      }) + '\n',
    );
  try {
    // The TAPs are made first, persistent, in their namespaces: they outlive a node process.
    for (const h of hosts) {
      ip(['netns', 'add', h.ns]);
      created.push(h.ns);
      record();
      for (const t of h.taps) ip(['-n', h.ns, 'tuntap', 'add', 'dev', t.ifname, 'mode', 'tap']);
    }
    if (engine) {
      engine.openLive({ taps });
    } else {
      procs = await startNodeProcesses(
        scenario,
        topo.nodes.map((n) => n.name),
        taps,
        io,
      );
      record();
    }
    for (const h of hosts) h.configure();
  } catch (e) {
    engine?.closeLive();
    await stopNodeProcesses(procs);
    teardown(created);
    rmSync(state, { force: true });
    throw e;
  }
  const running = engine?.live();
  const stopWatching = engine ? watchEvents(engine, io) : () => {};
  for (const h of hosts) {
    io.stdout.write(`${h.ns}: ${h.taps.map((t) => `${t.ifname} -> ${t.port}`).join(', ')}\n`);
  }
  topo.nodes.forEach((n, i) => {
    if (procs.length)
      io.stdout.write(
        `${n.name}: process ${procs[i].child.pid}, VXLAN over UDP on ${labUnderlayAddress(i)}\n`,
      );
  });
  io.stdout.write('ready\n');
  let stats: (StatsJson & { errors?: string[] }) | undefined;
  let removed: string[] = [];
  try {
    if (engine && running) {
      stats = await untilStopped(engine, running);
    } else {
      let stopping = false;
      for (const p of procs) {
        void p.exited.then((how) => {
          if (stopping) return;
          io.stderr.write(
            `dvrlab: the process of ${p.node} ended (${how}); the other nodes go on; ` +
              `to start it again: ${shellQuote(p.argv)}\n`,
          );
        });
      }
      await untilSignal();
      stopping = true;
      await stopNodeProcesses(procs);
    }
  } finally {
    stopWatching();
    // A namespace deleted under the lab is not there to remove.
    removed = teardown(created);
    rmSync(state, { force: true });
  }
  if (stats) printCounters(io, stats);
  for (const p of procs) {
    const at = p.out.search(/^ready$/m);
    const after = at < 0 ? '' : p.out.slice(at + 'ready\n'.length);
    for (const line of after.split('\n').filter(Boolean)) io.stdout.write(`${p.node}: ${line}\n`);
  }
  io.stdout.write(`removed ${removed.join(', ')}\n`);
  return 0;
}

/** `dvrlab lab down SCENARIO`: removes what a lab that did not stop cleanly left. */
export function labDown(scenario: string, io: CliIo): number {
  needRoot('lab down');
  const state = stateFile(scenario);
  if (!existsSync(state)) {
    io.stdout.write(`no lab of ${scenario} is recorded: nothing to remove\n`);
    return 0;
  }
  let namespaces: string[];
  let pids: number[];
  let commands: string[][];
  try {
    const doc = JSON.parse(readFileSync(state, 'utf8')) as {
      namespaces?: unknown;
      processes?: unknown;
      nodes?: { argv?: unknown }[];
    };
    namespaces = Array.isArray(doc.namespaces)
      ? doc.namespaces.filter((n): n is string => typeof n === 'string')
      : [];
    pids = Array.isArray(doc.processes)
      ? doc.processes.filter((n): n is number => Number.isInteger(n))
      : [];
    commands = (Array.isArray(doc.nodes) ? doc.nodes : [])
      .map((n) => n?.argv)
      .filter((a): a is string[] => Array.isArray(a) && a.every((x) => typeof x === 'string'));
  } catch (e) {
    throw new LabError(`${state}: unreadable lab record (${(e as Error).message})`);
  }
  // The node processes of a `--processes` lab whose parent died: still dvrlab run --node,
  // and those started again by hand with a recorded command line.
  for (const pid of new Set([...pids, ...processesRunning(commands)])) {
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmdline.includes('\0run\0') && cmdline.includes('\0--node\0')) {
      process.kill(pid, 'SIGTERM');
      io.stdout.write(`stopped the node process ${pid}\n`);
    }
  }
  const removed = teardown(namespaces);
  rmSync(state, { force: true });
  io.stdout.write(removed.length ? `removed ${removed.join(', ')}\n` : 'nothing left to remove\n');
  return 0;
}
