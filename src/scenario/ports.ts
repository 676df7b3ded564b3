/**
 * Port references: what users type (`test02`, `node1/uplink`, `br-int/vm1`, `vm1`) resolved
 * to the canonical references the engine takes, and the output file of every port.
 *
 * Canonical references: multi-node `NODE/BRIDGE/PORT` and `NODE/underlay`; one-node
 * `BRIDGE/PORT`. A bridge's LOCAL port is `BRIDGE/BRIDGE` (`NODE/BRIDGE/BRIDGE`), since OVS
 * names it after its bridge.
 *
 * Accepted user forms, multi-node: `NODE/BRIDGE/PORT`, `NODE/BRIDGE` (LOCAL), `NODE/underlay`,
 * `NODE/uplink` (the node's port of type uplink), `NODE/PORT`, a VM name, or a port name that
 * only one node has. One-node: `BRIDGE/PORT`, `BRIDGE` (LOCAL), or a port name (port names are
 * unique in a node). A name that fits several ports, or none, is an error listing candidates.
 *
 * Output files, relative to the output directory: multi-node `NODE/NAME.pcap`, NAME being the
 * VM name for a VM's port, `underlay`, `uplink` for the uplink port, else the port's name
 * (a bridge's name for its LOCAL port); one-node `PORT.pcap`. Two ports never share a file:
 * building the index fails if they would.
 */
import * as path from 'node:path';
import { PortRefError, ScenarioError } from '../errors.js';
import type { NativeScenario, PortFile } from '../native.js';
import { closest } from './schema.js';

/** What a port is, for resolution and naming. */
export type PortKind = 'port' | 'local' | 'underlay';

/** One port of the scenario that can receive or emit frames. */
export interface PortInfo {
  /** The canonical reference. */
  ref: string;
  node: string; // "" in a one-node scenario
  bridge: string; // "" for a node's underlay NIC
  name: string; // the port's name; the bridge's name for LOCAL; "underlay"
  kind: PortKind;
  type: string; // the port type; "internal" for LOCAL; "underlay"
  vm?: string;
  /** The output file, relative to the output directory, with '/' separators. */
  output: string;
}

/** All ports of a scenario, and the ways to name them. */
export class PortIndex {
  readonly ports: PortInfo[] = [];
  private readonly byRef = new Map<string, PortInfo>();
  private readonly oneNode: boolean;
  private readonly nodes: NativeScenario['nodes'];

  constructor(scenario: NativeScenario) {
    this.oneNode = scenario.oneNode;
    this.nodes = scenario.nodes;
    for (const node of scenario.nodes) {
      const prefix = this.oneNode ? '' : `${node.name}/`;
      const file = (name: string) => `${prefix}${name}.pcap`;
      for (const bridge of node.bridges) {
        for (const port of bridge.ports) {
          const name = port.vm ?? (!this.oneNode && port.type === 'uplink' ? 'uplink' : port.name);
          this.add({
            ref: `${prefix}${bridge.name}/${port.name}`,
            node: node.name,
            bridge: bridge.name,
            name: port.name,
            kind: 'port',
            type: port.type,
            ...(port.vm !== undefined ? { vm: port.vm } : {}),
            output: file(name),
          });
        }
        this.add({
          ref: `${prefix}${bridge.name}/${bridge.name}`,
          node: node.name,
          bridge: bridge.name,
          name: bridge.name,
          kind: 'local',
          type: 'internal',
          output: file(bridge.name),
        });
      }
      if (!this.oneNode && node.underlay) {
        this.add({
          ref: `${node.name}/underlay`,
          node: node.name,
          bridge: '',
          name: 'underlay',
          kind: 'underlay',
          type: 'underlay',
          output: file('underlay'),
        });
      }
    }
    const byOutput = new Map<string, PortInfo>();
    for (const p of this.ports) {
      const other = byOutput.get(p.output);
      if (other) {
        throw new ScenarioError(
          `ports ${other.ref} and ${p.ref} would both be written to ${p.output}; rename one`,
        );
      }
      byOutput.set(p.output, p);
    }
  }

  private add(p: PortInfo): void {
    this.ports.push(p);
    this.byRef.set(p.ref, p);
  }

  /** The port with this canonical reference, if any. */
  get(ref: string): PortInfo | undefined {
    return this.byRef.get(ref);
  }

  /** Resolves a user's port reference; throws `PortRefError` when it fits none or several. */
  resolve(userRef: string): PortInfo {
    const parts = userRef.split('/');
    if (userRef === '' || parts.some((p) => p === '')) {
      throw new PortRefError(`"${userRef}" is not a port reference`);
    }
    return this.oneNode
      ? this.resolveOneNode(userRef, parts)
      : this.resolveMultiNode(userRef, parts);
  }

  /** As `resolve`, for a port that frames are injected on: not a patch or tunnel port. */
  resolveInput(userRef: string): PortInfo {
    const p = this.resolve(userRef);
    if (p.type === 'patch') {
      throw new PortRefError(
        `cannot inject on patch port ${p.ref}: frames enter it only from its peer`,
      );
    }
    if (p.type === 'vxlan') {
      const where = this.oneNode ? "the underlay bridge's NIC" : `${p.node}/underlay`;
      throw new PortRefError(
        `cannot inject on vxlan port ${p.ref}: inject the encapsulated frames on ${where}`,
      );
    }
    return p;
  }

  /** Where every port writes what it transmits, under `dir`. */
  outputs(dir: string): PortFile[] {
    return this.ports.map((p) => ({ port: p.ref, path: path.join(dir, ...p.output.split('/')) }));
  }

  /** The names a user can type, for "did you mean" hints and candidate lists. */
  private userNames(): string[] {
    const names: string[] = [];
    for (const p of this.ports) {
      if (this.oneNode) names.push(p.kind === 'local' ? p.bridge : p.name);
      else if (p.vm !== undefined) names.push(p.vm);
      else if (p.kind === 'port' && p.type === 'uplink') names.push(`${p.node}/uplink`);
      else if (p.kind === 'local') names.push(`${p.node}/${p.bridge}`);
      else names.push(p.ref);
    }
    return names;
  }

  private unknown(userRef: string, what: string, candidates: string[]): never {
    const guess = closest(userRef, candidates);
    const hint = guess !== undefined ? ` (did you mean "${guess}"?)` : '';
    const shown = candidates.slice(0, 12).join(', ');
    const more = candidates.length > 12 ? `, ... (${candidates.length - 12} more)` : '';
    const list = candidates.length > 0 ? `; ${what}: ${shown}${more}` : `; there are no ports`;
    throw new PortRefError(`unknown port "${userRef}"${hint}${list}`);
  }

  private resolveOneNode(userRef: string, parts: string[]): PortInfo {
    const node = this.nodes[0];
    if (parts.length === 1) {
      const [name] = parts;
      const hit = this.ports.find((p) => (p.kind === 'local' ? p.bridge : p.name) === name);
      if (hit) return hit;
      return this.unknown(userRef, 'ports are', this.userNames());
    }
    if (parts.length === 2) {
      const [bridgeName, portName] = parts;
      const bridge = node.bridges.find((b) => b.name === bridgeName);
      if (!bridge) {
        const bridges = node.bridges.map((b) => b.name);
        const guess = closest(bridgeName, bridges);
        const hint = guess !== undefined ? ` (did you mean "${guess}"?)` : '';
        throw new PortRefError(
          `unknown bridge "${bridgeName}" in "${userRef}"${hint}; ` +
            `bridges are: ${bridges.join(', ')}`,
        );
      }
      const hit = this.byRef.get(`${bridgeName}/${portName}`);
      if (hit) return hit;
      const candidates = [...bridge.ports.map((p) => `${bridgeName}/${p.name}`), bridgeName];
      return this.unknown(userRef, `ports of ${bridgeName} are`, candidates);
    }
    throw new PortRefError(
      `"${userRef}" is not a port reference of a one-node scenario; ` +
        'use BRIDGE/PORT, BRIDGE or PORT',
    );
  }

  private resolveMultiNode(userRef: string, parts: string[]): PortInfo {
    if (parts.length === 1) {
      const [name] = parts;
      const vm = this.ports.find((p) => p.vm === name);
      if (vm) return vm;
      const named = this.ports.filter((p) => p.kind === 'port' && p.name === name);
      if (named.length === 1) return named[0];
      if (named.length > 1) {
        throw new PortRefError(
          `port name "${name}" is ambiguous: ${named.map((p) => p.ref).join(', ')}`,
        );
      }
      if (this.nodes.some((n) => n.name === name)) {
        throw new PortRefError(
          `"${name}" is a node; name one of its ports: ${name}/underlay, ${name}/uplink, ` +
            `${name}/BRIDGE/PORT or a VM name`,
        );
      }
      return this.unknown(userRef, 'ports are', this.userNames());
    }
    if (parts.length > 3) {
      throw new PortRefError(
        `"${userRef}" is not a port reference; use NODE/BRIDGE/PORT, NODE/underlay, ` +
          'NODE/uplink or a VM name',
      );
    }
    const [nodeName, ...rest] = parts;
    const node = this.nodes.find((n) => n.name === nodeName);
    if (!node) {
      const nodes = this.nodes.map((n) => n.name);
      const guess = closest(nodeName, nodes);
      const hint = guess !== undefined ? ` (did you mean "${guess}"?)` : '';
      throw new PortRefError(
        `unknown node "${nodeName}" in "${userRef}"${hint}; nodes are: ${nodes.join(', ')}`,
      );
    }
    const ofNode = this.ports.filter((p) => p.node === nodeName);
    if (rest.length === 1) {
      const [name] = rest;
      if (name === 'underlay') {
        const hit = this.byRef.get(`${nodeName}/underlay`);
        if (!hit) throw new PortRefError(`node "${nodeName}" has no underlay in the scenario`);
        return hit;
      }
      if (name === 'uplink') {
        const hit = ofNode.find((p) => p.kind === 'port' && p.type === 'uplink');
        if (!hit) throw new PortRefError(`node "${nodeName}" has no port of type uplink`);
        return hit;
      }
      const local = ofNode.find((p) => p.kind === 'local' && p.bridge === name);
      if (local) return local;
      const port = ofNode.find((p) => p.kind === 'port' && p.name === name);
      if (port) return port;
      const candidates = ofNode.map((p) =>
        p.kind === 'local' ? `${nodeName}/${p.bridge}` : p.ref,
      );
      return this.unknown(userRef, `ports of ${nodeName} are`, candidates);
    }
    const [bridgeName] = rest;
    const hit = this.byRef.get(userRef);
    if (hit) return hit;
    const bridges = node.bridges.map((b) => b.name);
    if (!bridges.includes(bridgeName)) {
      const guess = closest(bridgeName, bridges);
      const hint = guess !== undefined ? ` (did you mean "${guess}"?)` : '';
      throw new PortRefError(
        `unknown bridge "${bridgeName}" on node "${nodeName}" in "${userRef}"${hint}; ` +
          `bridges are: ${bridges.join(', ')}`,
      );
    }
    const candidates = ofNode.filter((p) => p.bridge === bridgeName).map((p) => p.ref);
    return this.unknown(userRef, `ports of ${nodeName}/${bridgeName} are`, candidates);
  }
}
