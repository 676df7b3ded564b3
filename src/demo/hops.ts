/**
 * Reads the engine's trace of one packet (every pass, on every node it reached) as the hops
 * a person follows: each bridge or namespace the packet went through, what that hop changed
 * in it, and the port it left by.
 *
 * Nothing here decides forwarding. The trace tree records, for each bridge and namespace, the
 * flow it was entered with and the ports it sent the packet out of; a hop's changes are the
 * difference between the flow it was entered with and the flow it handed on. Passes are
 * joined where the trace says they continue: a recirculation resumes the hop that sent the
 * packet to conntrack, a packet released from a neighbour queue resumes the hop that queued
 * it, and a decapsulation continues the tunnel output whose outer addresses it carries.
 * Packets a namespace generated (ARP requests, ICMP errors) are not hops of the packet: the
 * hop that caused them notes them.
 *
 * A flood gives a tree with several branches. The hops printed follow the branch that ends
 * on the port the packet was meant for (or, when none does, the longest one); the other
 * branches are reported as the ports their copies left by.
 */
import type { PacketTraceJson, TraceFlowJson, TraceNodeJson, TracePassJson } from '../native.js';

/** One change a hop made to the packet. */
export type Change =
  | { kind: 'vlan_push'; vid: number }
  | { kind: 'vlan_pop'; vid: number }
  | { kind: 'vlan_mod'; from: number; to: number }
  | { kind: 'dl_src' | 'dl_dst'; from: string; to: string }
  | { kind: 'ttl'; from: number; to: number }
  | { kind: 'snat' | 'dnat'; from: string; to: string }
  | { kind: 'arp_reply'; ip: string; mac: string }
  | {
      kind: 'vxlan_encap';
      vni: number;
      outer_src: string;
      outer_dst: string;
      inner_dl_src: string;
    }
  | { kind: 'vxlan_decap'; vni: number; outer_src: string; outer_dst: string };

export interface Hop {
  node: string;
  where: string; // br-int, br-tun, br-ex, or a namespace name
  namespace: boolean;
  changes: Change[];
  notes: string[]; // the namespace's decisions (routes, NAT commits, ARP), drops
  next: string; // the next hop's name, or where it left ("port qvo62806dde-b9")
}

export interface FollowedPacket {
  hops: Hop[];
  left?: { port: string; ref: string }; // where the followed branch left (canonical ref)
  reached: boolean; // it left on the port it was meant for
  copies: string[]; // canonical refs of the other ports a frame left by
  wire: string[]; // the underlay ports the followed branch crossed
}

interface HopNode {
  pass: number;
  node: string;
  tree: TraceNodeJson;
  flow: TraceFlowJson;
  notes: string[];
  drop?: string;
  exits: Exit[];
  passRoot: boolean; // the first hop of its pass
}

type Exit =
  | { kind: 'hop'; hop: HopNode }
  | { kind: 'port'; port: string; bridge: string; node: string; flow: TraceFlowJson };

const BRIDGE_RE = /^(bridge|namespace)\("(.*)"\)$/;

function hopName(t: TraceNodeJson): { where: string; namespace: boolean } {
  const m = BRIDGE_RE.exec(t.text);
  return { where: m?.[2] ?? t.text, namespace: m?.[1] === 'namespace' };
}

/** Builds the hop graph of a trace: hop nodes with their exits, and the root. */
function buildGraph(passes: TracePassJson[]): HopNode | undefined {
  const all: HopNode[] = [];
  const roots: { pass: TracePassJson; hop: HopNode }[] = [];

  const visit = (t: TraceNodeJson, pass: number, node: string): HopNode | undefined => {
    if (t.type !== 'bridge' || !t.flow) return undefined;
    const hop: HopNode = {
      pass,
      node,
      tree: t,
      flow: t.flow,
      notes: [],
      exits: [],
      passRoot: false,
    };
    all.push(hop);
    const bridge = hopName(t).where;
    let table = '';
    const walk = (children: TraceNodeJson[]) => {
      for (const c of children) {
        if (c.type === 'bridge') {
          const child = visit(c, pass, node);
          if (child) hop.exits.push({ kind: 'hop', hop: child });
          continue;
        }
        if (c.type === 'table') table = c.text.replace(/\..*$/, '').trim();
        const text = c.text.trim().replace(/^-> /, '');
        if (
          c.type === 'detail' &&
          /^(ip rule|commits the connection|no neighbour entry|ICMP type)/.test(text)
        ) {
          hop.notes.push(text);
        }
        if (c.type === 'warn' || c.type === 'error') hop.notes.push(text);
        if (c.type === 'action' && text === 'drop') hop.drop = `table ${table}`;
        walk(c.children);
      }
    };
    walk(t.children);
    for (const e of t.emitted ?? []) {
      hop.exits.push({ kind: 'port', port: e.port, bridge, node, flow: e.flow });
    }
    return hop;
  };

  passes.forEach((p, i) => {
    for (const t of p.trace) {
      const hop = visit(t, i, p.node);
      if (hop) {
        hop.passRoot = true;
        roots.push({ pass: p, hop });
      }
    }
  });
  if (roots.length === 0) return undefined;

  // Join the passes: a recirculation resumes the hop that sent the packet to conntrack, a
  // decapsulation continues the tunnel output with the same outer addresses.
  for (const { pass, hop } of roots.slice(1)) {
    const k = pass.pass;
    let parent: HopNode | undefined;
    const before = (text: string) =>
      all.find((h) => h.node === pass.node && h.pass < hop.pass && hasText(h.tree, text));
    if (k.kind === 'generated') {
      const id = k.recirc_id.toString(16);
      const cause = before(`resume as 0x${id}`) ?? before(`resumes as 0x${id}`);
      if (cause && hasText(hop.tree, 'neighbour learned', true)) {
        cause.notes.push('the ARP request was answered: neighbour learned');
      }
      continue;
    }
    if (k.kind === 'recirculated') {
      parent = before(`recirculates as 0x${k.recirc_id.toString(16)}`);
    } else if (k.kind === 'released') {
      parent = before(`resume as 0x${k.recirc_id.toString(16)}`);
    } else if (k.kind === 'decapsulated') {
      parent = all.find((h) =>
        h.exits.some(
          (e) =>
            e.kind === 'port' &&
            e.port === 'underlay' &&
            e.flow.tun_src === k.tun_src &&
            e.flow.tun_dst === k.tun_dst &&
            e.flow.tun_id === k.tun_id,
        ),
      );
    }
    parent ??= all.filter((h) => h.pass < hop.pass).at(-1);
    parent?.exits.push({ kind: 'hop', hop });
  }
  return roots[0]!.hop;
}

/** Whether `t` says `s`, in itself or its details (in the hops below too with `deep`). */
function hasText(t: TraceNodeJson, s: string, deep = false): boolean {
  return (
    t.text.includes(s) ||
    t.children.some((c) => (deep || c.type !== 'bridge') && hasText(c, s, deep))
  );
}

/** The canonical reference of a port a bridge sent the packet out of. */
function portRef(e: Extract<Exit, { kind: 'port' }>): string {
  if (e.port === 'underlay') return `${e.node}/underlay`;
  return `${e.node}/${e.bridge}/${e.port}`;
}

/** What changed between the flow a hop was entered with and the flow it handed on. */
export function changes(a: TraceFlowJson, b: TraceFlowJson, leaving?: Exit): Change[] {
  const out: Change[] = [];
  const arp = a.dl_type === 0x0806 && b.dl_type === 0x0806;
  if (arp && a.nw_proto === 1 && b.nw_proto === 2) {
    out.push({ kind: 'arp_reply', ip: b.nw_src, mac: b.arp_sha });
  }
  if (a.dl_vlan === null && b.dl_vlan !== null) out.push({ kind: 'vlan_push', vid: b.dl_vlan });
  else if (a.dl_vlan !== null && b.dl_vlan === null)
    out.push({ kind: 'vlan_pop', vid: a.dl_vlan });
  else if (a.dl_vlan !== null && b.dl_vlan !== null && a.dl_vlan !== b.dl_vlan) {
    out.push({ kind: 'vlan_mod', from: a.dl_vlan, to: b.dl_vlan });
  }
  if (a.dl_src !== b.dl_src) out.push({ kind: 'dl_src', from: a.dl_src, to: b.dl_src });
  if (a.dl_dst !== b.dl_dst) out.push({ kind: 'dl_dst', from: a.dl_dst, to: b.dl_dst });
  if (a.dl_type === 0x0800 && b.dl_type === 0x0800) {
    if (a.nw_ttl !== b.nw_ttl) out.push({ kind: 'ttl', from: a.nw_ttl, to: b.nw_ttl });
    const ports = a.nw_proto === 6 || a.nw_proto === 17;
    const ep = (ip: string, p: number) => (ports ? `${ip}:${p}` : ip);
    if (a.nw_src !== b.nw_src || (ports && a.tp_src !== b.tp_src)) {
      out.push({ kind: 'snat', from: ep(a.nw_src, a.tp_src), to: ep(b.nw_src, b.tp_src) });
    }
    if (a.nw_dst !== b.nw_dst || (ports && a.tp_dst !== b.tp_dst)) {
      out.push({ kind: 'dnat', from: ep(a.nw_dst, a.tp_dst), to: ep(b.nw_dst, b.tp_dst) });
    }
  }
  if (leaving?.kind === 'port' && leaving.port === 'underlay' && b.tun_id !== null) {
    out.push({
      kind: 'vxlan_encap',
      vni: b.tun_id,
      outer_src: b.tun_src ?? '',
      outer_dst: b.tun_dst ?? '',
      inner_dl_src: b.dl_src,
    });
  }
  return out;
}

/** How many hops the longest chain below `h` has, and whether some chain reaches `target`. */
function explore(
  h: HopNode,
  target: string,
  seen = new Set<HopNode>(),
): { depth: number; reaches: boolean } {
  let depth = 0;
  let reaches = false;
  if (seen.has(h)) return { depth, reaches };
  seen.add(h);
  for (const e of h.exits) {
    if (e.kind === 'port') {
      if (portRef(e) === target) reaches = true;
      continue;
    }
    const r = explore(e.hop, target, seen);
    depth = Math.max(depth, r.depth + 1);
    reaches ||= r.reaches;
  }
  return { depth, reaches };
}

/** Follows a traced packet towards `target` (a canonical port reference). */
export function followPacket(t: PacketTraceJson, target: string): FollowedPacket {
  const root = buildGraph(t.trace.passes);
  const result: FollowedPacket = { hops: [], reached: false, copies: [], wire: [] };
  let h = root;
  const seen = new Set<HopNode>();
  while (h && !seen.has(h)) {
    seen.add(h);
    // The exit to follow: the port meant, else a hop whose branch reaches it, else the
    // deepest branch, else the first port.
    const ports = h.exits.filter((e): e is Extract<Exit, { kind: 'port' }> => e.kind === 'port');
    const hops = h.exits.filter((e): e is Extract<Exit, { kind: 'hop' }> => e.kind === 'hop');
    let chosen: Exit | undefined = ports.find((e) => portRef(e) === target);
    if (!chosen) {
      const ranked = hops.map((e) => ({ e, r: explore(e.hop, target) }));
      chosen =
        ranked.find((x) => x.r.reaches)?.e ??
        (ranked.length > 0
          ? ranked.reduce((a, b) => (b.r.depth > a.r.depth ? b : a)).e
          : ports[0]);
    }
    const { where, namespace } = hopName(h.tree);
    const next = h.exits.length === 0 ? undefined : chosen;
    const nextFlow = next?.kind === 'hop' ? next.hop.flow : next?.flow;
    const hop: Hop = {
      node: h.node,
      where,
      namespace,
      changes: nextFlow ? changes(h.flow, nextFlow, next) : [],
      notes: [...h.notes],
      next: '',
    };
    const pass = t.trace.passes[h.pass]?.pass;
    if (h.passRoot && pass?.kind === 'decapsulated') {
      hop.changes.unshift({
        kind: 'vxlan_decap',
        vni: pass.tun_id,
        outer_src: pass.tun_src,
        outer_dst: pass.tun_dst,
      });
    }
    // Leaving for another node: the tunnel output carried it there.
    const nextPass = next?.kind === 'hop' ? t.trace.passes[next.hop.pass]?.pass : undefined;
    if (next?.kind === 'hop' && next.hop.passRoot && nextPass?.kind === 'decapsulated') {
      hop.changes.push({
        kind: 'vxlan_encap',
        vni: nextPass.tun_id,
        outer_src: nextPass.tun_src,
        outer_dst: nextPass.tun_dst,
        inner_dl_src: next.hop.flow.dl_src,
      });
      result.wire.push(`${h.node}/underlay`);
    }
    if (!next) {
      hop.notes.push(h.drop ? `dropped at ${h.drop}` : `dropped (${t.drop ?? 'no output'})`);
    }
    // A namespace resumed after conntrack is the same hop: merge the two.
    const last = result.hops.at(-1);
    if (last && last.node === hop.node && last.where === hop.where) {
      last.changes.push(...hop.changes);
      last.notes.push(...hop.notes);
      last.next = '';
    } else {
      result.hops.push(hop);
    }
    const cur = result.hops.at(-1)!;
    if (next?.kind === 'port') {
      const ref = portRef(next);
      result.left = { port: next.port, ref };
      result.reached = ref === target;
      cur.next = `port ${next.port}`;
      break;
    }
    if (next?.kind === 'hop') {
      const n = hopName(next.hop.tree).where;
      cur.next = next.hop.node !== h.node ? `${next.hop.node} over ${h.node}/underlay` : n;
    }
    h = next?.kind === 'hop' ? next.hop : undefined;
  }
  const mainRef = result.left?.ref;
  const counted = new Set<string>();
  for (const o of t.trace.outputs) {
    if ((o.port === mainRef || result.wire.includes(o.port)) && !counted.has(o.port)) {
      counted.add(o.port);
      continue;
    }
    result.copies.push(o.port);
  }
  return result;
}
