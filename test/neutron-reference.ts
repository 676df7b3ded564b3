/**
 * Reads the expected flows of the seed devstack out of the reference
 * (`<shared>/reference/neutron-dvr-flows.md`, §4) at test time, so that the tests compare
 * the compiler with the text the project agreed on rather than with a copy of it.
 *
 * §4 lists flows as `table=T, priority=P,MATCH actions=ACTIONS`, followed by annotations
 * (`; same for ...`, `(also ...)`, a `[S]`/`[C]` tag). It abbreviates three action lists
 * (`ARP(M,IP)`, `LEARN`, `TUN(x,p)`) and writes values the seed does not show as
 * placeholders (`<D1>`, `<Lp2>`, ...). `referenceFlows` takes every complete flow of a
 * listing, expands the abbreviations and fills the placeholders from a map; what only an
 * annotation says is left to the tests, which state it inline.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { sharedDir } from './helpers.js';

/** The reference text. */
export function referenceText(): string {
  return readFileSync(path.join(sharedDir(), 'reference', 'neutron-dvr-flows.md'), 'utf8');
}

/** The text of the section that starts with `heading` (up to the next heading of its level). */
export function section(text: string, heading: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === heading);
  if (start < 0) throw new Error(`the reference has no heading "${heading}"`);
  const level = /^#+/.exec(heading)![0].length;
  let end = lines.length;
  for (let i = start + 1; i < lines.length; i++) {
    const m = /^(#+) /.exec(lines[i]);
    if (m && m[1].length <= level) {
      end = i;
      break;
    }
  }
  return lines.slice(start + 1, end).join('\n');
}

/** The code blocks of a section, each with the bold label written just before it, if any. */
export function codeBlocks(text: string): { label: string; lines: string[] }[] {
  const out: { label: string; lines: string[] }[] = [];
  const lines = text.split('\n');
  let label = '';
  for (let i = 0; i < lines.length; i++) {
    const bold = /^\*\*(.+?)\*\*/.exec(lines[i]);
    if (bold) label = bold[1];
    if (lines[i].startsWith('```')) {
      const body: string[] = [];
      for (i++; i < lines.length && !lines[i].startsWith('```'); i++) body.push(lines[i]);
      out.push({ label, lines: body });
      label = '';
    }
  }
  return out;
}

/** The reference's `LEARN` abbreviation; `C` stands for the bridge's cookie. */
const LEARN =
  'learn(table=20,hard_timeout=300,priority=1,cookie=C,NXM_OF_VLAN_TCI[0..11],' +
  'NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:0->NXM_OF_VLAN_TCI[],' +
  'load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],output:OXM_OF_IN_PORT[])';

/** Expands `ARP(M,IP)`, `TUN(x,p)` and `LEARN` as the reference defines them. */
export function expand(actions: string): string {
  return actions
    .replace(/ARP\(([0-9a-f]{12}),([0-9a-f]+)\)/g, (_, m: string, a: string) => {
      const mac = m.match(/../g)!.join(':');
      return (
        'load:0x2->NXM_OF_ARP_OP[],move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],' +
        'move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],' +
        `load:0x${m}->NXM_NX_ARP_SHA[],load:0x${a}->NXM_OF_ARP_SPA[],` +
        `move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:${mac},IN_PORT`
      );
    })
    .replace(
      /TUN\((0x[0-9a-f]+),(\d+)\)/g,
      (_, x: string, p: string) => `strip_vlan,load:${x}->NXM_NX_TUN_ID[],output:${p}`,
    )
    .replace(/\bLEARN\b/g, LEARN);
}

/**
 * Normalises one flow for comparison: no cookie, durations or counters, the learn action's
 * cookie as `C`, and the dump-flows spacing `table=T, priority=P,MATCH actions=A`.
 */
export function normalise(flow: string): string {
  const fields = flow
    .trim()
    .replace(/^cookie=0x[0-9a-f]+,\s*/, '')
    .replace(/\b(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,\s*/g, '')
    .replace(/(learn\([^)]*?cookie=)0x[0-9a-f]+/, '$1C');
  const m = /^table=(\d+),\s*priority=(\d+)(,\S+)?\s+actions=(\S+)$/.exec(fields);
  if (!m) throw new Error(`not a flow: ${flow}`);
  return `table=${m[1]}, priority=${m[2]}${m[3] ?? ''} actions=${m[4]}`;
}

/** A flow of a listing, with the bridge named in front of it (node1's listing does that). */
export interface ReferenceFlow {
  bridge?: string;
  flow: string; // normalised
}

/**
 * The complete flows of a listing. A part of a line (split at ` ; `) is a flow when it
 * starts with `table=N, priority=N` and has `actions=`; the rest of the line is annotation.
 * Placeholders are filled from `values`; an unknown placeholder is an error.
 */
export function referenceFlows(lines: string[], values: Record<string, string>): ReferenceFlow[] {
  const out: ReferenceFlow[] = [];
  for (const raw of lines) {
    const m = /^(br-[a-z]+)\s+(.*)$/.exec(raw.trim());
    const bridge = m?.[1];
    const rest = m ? m[2] : raw.trim();
    for (const part of rest.split(/\s+;\s+/)) {
      const filled = part.trim().replace(/<([^>]+)>/g, (all, name: string) => values[name] ?? all);
      const flow = /^table=\d+, priority=\d+(,\S+)? actions=\S+/.exec(filled);
      if (!flow) {
        if (/^table=\d+, priority=\d+[ ,]/.test(filled) && /<[^>]+>/.test(filled)) {
          throw new Error(`a placeholder has no value in: ${raw}`);
        }
        continue;
      }
      if (flow[0].includes('<')) throw new Error(`a placeholder has no value in: ${raw}`);
      out.push({ bridge, flow: normalise(expand(flow[0])) });
    }
  }
  return out;
}
