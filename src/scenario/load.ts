/**
 * Loads a scenario file (JSON or YAML, one-node or multi-node) into the `NativeScenario` the
 * engine takes, after checking everything a person can get wrong in it.
 *
 * Every error is a `ScenarioError` of one line, `FILE:LINE:COLUMN: PATH: what`, where PATH is
 * the JSON path of the offending value (`bridges[1].ports[0].ofport`). Checks beyond the
 * schema: unique node, bridge and port names (a port may not take a bridge's name, which is
 * its LOCAL port's), unique ofports within a bridge, patch peers that exist and point back,
 * VXLAN ports with a remote_ip, at most one uplink port per node, unique VM names, and route
 * and neighbour devices that exist.
 *
 * Flows come as a file name (relative to the scenario), an array of strings, or a multi-line
 * string. As `ovs-ofctl add-flows` does, `#` starts a comment anywhere on a line and blank
 * lines are skipped; line numbers count every line, so messages point at the right one.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { z } from 'zod';
import { ScenarioError } from '../errors.js';
import type {
  NativeBridge,
  NativeFlow,
  NativeNeighbor,
  NativeNode,
  NativePort,
  NativeRoute,
  NativeScenario,
} from '../native.js';
import { detectFormat, formatPath, parseText, type ParsedText, type PathSeg } from './parse.js';
import {
  type BridgeFile,
  type NeighborFile,
  type PortFile,
  type RouteFile,
  intIn,
  isIpAddress,
  multiNodeSchema,
  oneNodeSchema,
  reportIssue,
} from './schema.js';

/** A checked, normalised scenario. */
export interface LoadedScenario {
  /** The scenario file as the user named it. */
  file: string;
  scenario: NativeScenario;
  /** Things the user should know that do not stop the run (printed on stderr). */
  warnings: string[];
}

/** Reads, parses, validates and normalises a scenario file. */
export function loadScenario(file: string): LoadedScenario {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ScenarioError(`${file}: cannot read scenario: ${describeFsError(e)}`);
  }
  return loadScenarioText(text, file);
}

/** As `loadScenario`, for text already read; `file` names it and anchors flow file names. */
export function loadScenarioText(text: string, file: string): LoadedScenario {
  const parsed = parseText(text, file, detectFormat(file, text));
  return new Loader(file, parsed).load();
}

/** The message of a file-system error without Node's "ENOENT: ..., open 'x'" decoration. */
export function describeFsError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    default:
      return err.message;
  }
}

class Loader {
  private readonly warnings: string[] = [];

  constructor(
    private readonly file: string,
    private readonly parsed: ParsedText,
  ) {}

  private at(p: readonly PathSeg[]): string {
    const pos = this.parsed.locate(p);
    const where = pos ? `${this.file}:${pos.line}:${pos.column}` : this.file;
    return p.length > 0 ? `${where}: ${formatPath(p)}` : where;
  }

  private fail(p: readonly PathSeg[], message: string): never {
    throw new ScenarioError(`${this.at(p)}: ${message}`);
  }

  private warn(p: readonly PathSeg[], message: string): void {
    this.warnings.push(`${this.at(p)}: ${message}`);
  }

  private validate<S extends z.ZodTypeAny>(schema: S, value: unknown): z.infer<S> {
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    const { path: p, message } = reportIssue(schema, result.error.issues, value);
    return this.fail(p, message);
  }

  load(): LoadedScenario {
    const root = this.parsed.value;
    const shapeHint =
      'expected an object with "bridges" (one-node scenario) or "nodes" (multi-node scenario)';
    if (root === null || typeof root !== 'object' || Array.isArray(root)) {
      this.fail([], shapeHint);
    }
    const hasBridges = 'bridges' in root;
    const hasNodes = 'nodes' in root;
    if (hasBridges && hasNodes) {
      this.fail(['nodes'], 'a scenario has either top-level "bridges" or "nodes", not both');
    }
    let scenario: NativeScenario;
    if (hasBridges) {
      const data = this.validate(oneNodeSchema, root);
      const node = this.node([], '', data.bridges, data.routes, data.neighbors, data.mtu, true);
      for (const key of ['vsctl', 'appctl'] as const) {
        if ((data[key] ?? []).length > 0) {
          this.warn([key], 'ignored: dvrlab does not run ovs-vsctl/ovs-appctl commands');
        }
      }
      scenario = { oneNode: true, nodes: [node] };
      // The datapath settings OVS takes from other_config and dvrlab honours too.
      const other = data.ovs_other_config ?? {};
      for (const [key, field] of [
        ['flow-limit', 'megaflowLimit'],
        ['max-idle', 'maxIdle'],
      ] as const) {
        const raw = other[key];
        if (raw === undefined) continue;
        const v = String(raw);
        if (!/^\d+$/.test(v) || Number(v) < 1 || !Number.isSafeInteger(Number(v))) {
          this.fail(['ovs_other_config', key], `expected a whole number >= 1, found "${v}"`);
        }
        scenario[field] = Number(v);
      }
      // emc-insert-inv-prob: 0 disables the exact-match cache, N inserts with probability 1/N.
      const inv = other['emc-insert-inv-prob'];
      if (inv !== undefined) {
        const v = String(inv);
        if (!/^\d+$/.test(v) || Number(v) > 0xffffffff) {
          this.fail(
            ['ovs_other_config', 'emc-insert-inv-prob'],
            `expected a whole number from 0 to 4294967295, found "${v}"`,
          );
        }
        scenario.emcInsertInvProb = Number(v);
      }
      // Flows installed over OpenFlow 1.0 keep their OpenFlow 1.0 actions (mod_dl_src stays
      // mod_dl_src in traces and dumps), as OVS does when ovs-ofctl speaks only OpenFlow 1.0.
      const args = data.ofctl_args ?? [];
      const versions = args.flatMap((a, i) => (args[i - 1] === '-O' ? a.split(',') : []));
      if (versions.length > 0 && versions.every((v) => v === 'OpenFlow10')) {
        scenario.openflow10 = true;
      }
    } else if (hasNodes) {
      const data = this.validate(multiNodeSchema, root);
      const names = new Map<string, number>();
      const nodes = data.nodes.map((n, i) => {
        const prev = names.get(n.name);
        if (prev !== undefined) {
          this.fail(['nodes', i, 'name'], `duplicate node name "${n.name}" (also nodes[${prev}])`);
        }
        names.set(n.name, i);
        const node = this.node(
          ['nodes', i],
          n.name,
          n.bridges,
          n.routes,
          n.neighbors,
          n.mtu,
          false,
        );
        if (n.underlay) node.underlay = { ip: n.underlay.ip, mac: n.underlay.mac.toLowerCase() };
        if (n.namespaces !== undefined) node.namespaces = n.namespaces;
        return node;
      });
      this.checkVmNames(nodes);
      scenario = { oneNode: false, nodes };
    } else {
      return this.fail([], shapeHint);
    }
    return { file: this.file, scenario, warnings: this.warnings };
  }

  private node(
    base: PathSeg[],
    name: string,
    bridges: BridgeFile[],
    routes: RouteFile[] | undefined,
    neighbors: NeighborFile[] | undefined,
    mtu: number | undefined,
    oneNode: boolean,
  ): NativeNode {
    const bridgeAt = new Map<string, number>();
    bridges.forEach((b, i) => {
      const prev = bridgeAt.get(b.name);
      if (prev !== undefined) {
        this.fail(
          [...base, 'bridges', i, 'name'],
          `duplicate bridge name "${b.name}" (also ${formatPath([...base, 'bridges', prev])})`,
        );
      }
      bridgeAt.set(b.name, i);
    });

    // Port names are unique per node, as in one OVS database; a bridge's name is taken by its
    // LOCAL port.
    const portAt = new Map<string, PathSeg[]>();
    bridges.forEach((b, bi) => {
      (b.ports ?? []).forEach((p, pi) => {
        const here = [...base, 'bridges', bi, 'ports', pi];
        if (bridgeAt.has(p.name)) {
          this.fail(
            [...here, 'name'],
            `port name "${p.name}" is taken by the LOCAL port of bridge "${p.name}"`,
          );
        }
        const prev = portAt.get(p.name);
        if (prev)
          this.fail(
            [...here, 'name'],
            `duplicate port name "${p.name}" (also ${formatPath(prev)})`,
          );
        portAt.set(p.name, here);
      });
    });

    const nativeBridges = bridges.map((b, bi) =>
      this.bridge([...base, 'bridges', bi], b, oneNode),
    );
    this.checkPatches(base, nativeBridges);
    this.checkUplinks(base, nativeBridges);

    const devs = new Set<string>([...bridgeAt.keys(), ...portAt.keys()]);
    const checkDev = (p: PathSeg[], dev: string) => {
      if (!devs.has(dev)) this.fail(p, `no bridge or port named "${dev}"`);
    };
    const nativeRoutes: NativeRoute[] = (routes ?? []).map((r, i) => {
      checkDev([...base, 'routes', i, 'dev'], r.dev);
      return r.gw === undefined
        ? { prefix: r.prefix, dev: r.dev }
        : { prefix: r.prefix, dev: r.dev, gw: r.gw };
    });
    const nativeNeighbors: NativeNeighbor[] = (neighbors ?? []).map((n, i) => {
      checkDev([...base, 'neighbors', i, 'dev'], n.dev);
      return { dev: n.dev, ip: n.ip, mac: n.mac.toLowerCase() };
    });

    const node: NativeNode = {
      name,
      bridges: nativeBridges,
      routes: nativeRoutes,
      neighbors: nativeNeighbors,
    };
    if (mtu !== undefined) node.mtu = mtu;
    return node;
  }

  private bridge(here: PathSeg[], b: BridgeFile, oneNode: boolean): NativeBridge {
    for (const key of ['groups', 'meters'] as const) {
      if ((b[key] ?? []).length > 0) this.fail([...here, key], `${key} are not supported`);
    }
    for (const key of ['other_config', 'set'] as const) {
      const v = b[key];
      if (v && Object.keys(v).length > 0) {
        this.warn([...here, key], 'ignored: dvrlab does not emulate raw Bridge table columns');
      }
    }
    const ofportAt = new Map<number, number>();
    const ports = (b.ports ?? []).map((p, pi) => {
      const prev = ofportAt.get(p.ofport);
      if (prev !== undefined) {
        this.fail(
          [...here, 'ports', pi, 'ofport'],
          `duplicate ofport ${p.ofport} in bridge "${b.name}" (also ports[${prev}])`,
        );
      }
      ofportAt.set(p.ofport, pi);
      return this.port([...here, 'ports', pi], p, oneNode);
    });
    const bridge: NativeBridge = {
      name: b.name,
      failMode: b.fail_mode ?? 'secure',
      ports,
      flows: this.flows([...here, 'flows'], b.flows),
    };
    if (b.mac !== undefined) bridge.mac = b.mac.toLowerCase();
    if (b.ip !== undefined) bridge.ip = b.ip;
    return bridge;
  }

  private port(here: PathSeg[], p: PortFile, oneNode: boolean): NativePort {
    let type: string = p.type ?? (oneNode ? 'dummy' : 'internal');
    // The oracle runs system, dpdk, afxdp and untyped ports as dummy ports; so do we.
    if (type === '' || type === 'dpdk' || type === 'afxdp') type = 'dummy';

    const options: Record<string, string> = {};
    for (const [k, v] of Object.entries(p.options ?? {})) options[k] = String(v);
    const set = p.port_set ?? {};

    const port: NativePort = { name: p.name, ofport: p.ofport, type, options };
    const peer = p.peer ?? options.peer;
    delete options.peer;
    if (type === 'patch') {
      if (peer === undefined)
        this.fail([...here, 'options'], `patch port "${p.name}" needs options.peer`);
      port.peer = peer;
    } else if (peer !== undefined) {
      this.fail(
        [...here, p.peer !== undefined ? 'peer' : 'options'],
        `only patch ports have a peer ("${p.name}" is ${type})`,
      );
    }
    if (type === 'vxlan') this.checkVxlan(here, p.name, options);

    const tag =
      p.tag ??
      (set.tag !== undefined
        ? this.setInt([...here, 'port_set', 'tag'], set.tag, 0, 4095)
        : undefined);
    if (tag !== undefined) port.tag = tag;
    const trunks =
      p.trunks ??
      (set.trunks !== undefined
        ? this.trunks([...here, 'port_set', 'trunks'], set.trunks)
        : undefined);
    if (trunks !== undefined) port.trunks = trunks;
    const vlanMode =
      p.vlan_mode ?? (set.vlan_mode !== undefined ? String(set.vlan_mode) : undefined);
    if (vlanMode !== undefined) port.vlanMode = vlanMode;
    if (p.mtu !== undefined) port.mtu = p.mtu;
    if (p.vm !== undefined) port.vm = p.vm;
    return port;
  }

  private setInt(here: PathSeg[], v: string | number | boolean, lo: number, hi: number): number {
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    const r = intIn(lo, hi).safeParse(n);
    if (!r.success)
      this.fail(here, `expected a number from ${lo} to ${hi}, got ${JSON.stringify(v)}`);
    return r.data;
  }

  /** OVS writes trunks as `1,2,3` or `[1, 2, 3]`. */
  private trunks(here: PathSeg[], v: string | number | boolean): number[] {
    const text = String(v).replace(/^\[|\]$/g, '');
    return text
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map((s) => this.setInt(here, s, 0, 4095));
  }

  private checkVxlan(here: PathSeg[], name: string, options: Record<string, string>): void {
    const remote = options.remote_ip;
    if (remote === undefined)
      this.fail([...here, 'options'], `vxlan port "${name}" needs options.remote_ip`);
    if (remote !== 'flow' && !isIpAddress(remote)) {
      this.fail(
        [...here, 'options', 'remote_ip'],
        `expected an IP address or "flow", got ${JSON.stringify(remote)}`,
      );
    }
    const local = options.local_ip;
    if (local !== undefined && local !== 'flow' && !isIpAddress(local)) {
      this.fail(
        [...here, 'options', 'local_ip'],
        `expected an IP address or "flow", got ${JSON.stringify(local)}`,
      );
    }
    for (const k of ['key', 'in_key', 'out_key']) {
      const v = options[k];
      if (v !== undefined && v !== 'flow' && !/^(0x[0-9a-fA-F]{1,6}|\d{1,8})$/.test(v)) {
        this.fail(
          [...here, 'options', k],
          `expected a VNI (0 to 16777215) or "flow", got ${JSON.stringify(v)}`,
        );
      }
      if (v !== undefined && v !== 'flow' && Number(v) > 0xffffff) {
        this.fail(
          [...here, 'options', k],
          `expected a VNI (0 to 16777215) or "flow", got ${JSON.stringify(v)}`,
        );
      }
    }
    const dst = options.dst_port;
    if (
      dst !== undefined &&
      !(/^\d{1,5}$/.test(dst) && Number(dst) >= 1 && Number(dst) <= 65535)
    ) {
      this.fail(
        [...here, 'options', 'dst_port'],
        `expected a UDP port from 1 to 65535, got ${JSON.stringify(dst)}`,
      );
    }
  }

  private checkPatches(base: PathSeg[], bridges: NativeBridge[]): void {
    const patches = new Map<string, { port: NativePort; at: PathSeg[] }>();
    bridges.forEach((b, bi) =>
      b.ports.forEach((p, pi) => {
        if (p.type === 'patch')
          patches.set(p.name, { port: p, at: [...base, 'bridges', bi, 'ports', pi] });
      }),
    );
    for (const { port, at } of patches.values()) {
      const peer = patches.get(port.peer ?? '');
      const where = [...at, 'options', 'peer'];
      if (!peer) this.fail(where, `patch port "${port.name}": no patch port named "${port.peer}"`);
      if (peer.port.peer !== port.name) {
        this.fail(
          where,
          `patch port "${port.name}": its peer "${port.peer}" has peer ` +
            `"${peer.port.peer}", not "${port.name}"`,
        );
      }
    }
  }

  private checkUplinks(base: PathSeg[], bridges: NativeBridge[]): void {
    let first: PathSeg[] | undefined;
    bridges.forEach((b, bi) =>
      b.ports.forEach((p, pi) => {
        if (p.type !== 'uplink') return;
        const here = [...base, 'bridges', bi, 'ports', pi];
        if (first)
          this.fail(
            [...here, 'type'],
            `a node has at most one uplink port (also ${formatPath(first)})`,
          );
        first = here;
      }),
    );
  }

  private checkVmNames(nodes: NativeNode[]): void {
    const seen = new Map<string, PathSeg[]>();
    nodes.forEach((n, ni) =>
      n.bridges.forEach((b, bi) =>
        b.ports.forEach((p, pi) => {
          if (p.vm === undefined) return;
          const here = ['nodes', ni, 'bridges', bi, 'ports', pi, 'vm'];
          const prev = seen.get(p.vm);
          if (prev)
            this.fail(here, `VM "${p.vm}" already has a port (${formatPath(prev.slice(0, -1))})`);
          if (nodes.some((other) => other.name === p.vm)) {
            this.fail(here, `VM name "${p.vm}" is also a node name`);
          }
          seen.set(p.vm, here);
        }),
      ),
    );
  }

  private flows(here: PathSeg[], flows: string | string[] | undefined): NativeFlow[] {
    if (flows === undefined) return [];
    const out: NativeFlow[] = [];
    const add = (raw: string, source: string, line: number) => {
      // As ovs-ofctl: '#' starts a comment anywhere on the line.
      const hash = raw.indexOf('#');
      const text = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
      if (text !== '') out.push({ text, source, line });
    };
    if (Array.isArray(flows)) {
      flows.forEach((f, i) => {
        const source = `${this.file}:${formatPath([...here, i])}`;
        f.split(/\r?\n/).forEach((l, j) => add(l, source, j + 1));
      });
      return out;
    }
    if (/[\r\n]/.test(flows)) {
      const source = `${this.file}:${formatPath(here)}`;
      flows.split(/\r?\n/).forEach((l, j) => add(l, source, j + 1));
      return out;
    }
    const name = flows.trim();
    if (name === '') this.fail(here, 'expected a flows file name, got ""');
    const resolved = path.resolve(path.dirname(this.file), name);
    let text: string;
    try {
      text = readFileSync(resolved, 'utf8');
    } catch (e) {
      const hint = /actions\s*=/.test(name)
        ? ' (to write flows inline, give an array of strings)'
        : '';
      return this.fail(here, `cannot read flows file "${name}": ${describeFsError(e)}${hint}`);
    }
    const rel = path.relative(process.cwd(), resolved);
    const source =
      rel === '' || rel.startsWith('..' + path.sep + '..' + path.sep) ? resolved : rel;
    text.split(/\r?\n/).forEach((l, j) => add(l, source, j + 1));
    return out;
  }
}
