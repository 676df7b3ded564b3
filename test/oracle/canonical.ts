/**
 * Datapath actions in a canonical form, for comparing dvrlab's with Open vSwitch's when only
 * the order of outputs may differ. OVS floods in the order of its port hash map and bundle
 * list, which follow the order its ports were created in, and that order changes from one
 * OVS run to the next; what each port receives does not.
 *
 * Every output becomes "port@(the packet's VLAN tags and edits at that point)", the list is
 * sorted. VLAN pushes and pops are applied to the packet's own tags (given by the caller
 * from the flow's match), so "pop_vlan,push_vlan(vid=20,pcp=0)" on a packet tagged 20 equals
 * no VLAN action at all. A clone's actions see the edits made before it, and leave them.
 */

/** Splits datapath actions at top-level commas. */
export function splitActions(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  if (cur !== '') out.push(cur);
  return out;
}

interface State {
  tags: string[]; // outermost last
  edits: string[];
}

function tagOf(push: string): string {
  const vid = /vid=(\d+)/.exec(push)?.[1] ?? '?';
  const pcp = /pcp=(\d+)/.exec(push)?.[1] ?? '0';
  const tpid = /tpid=(0x[0-9a-f]+)/.exec(push)?.[1] ?? '0x8100';
  return `${tpid}:${vid}:${pcp}`;
}

function walk(actions: string[], st: State, outs: string[]): void {
  for (const a of actions) {
    if (a.startsWith('clone(') && a.endsWith(')')) {
      walk(
        splitActions(a.slice('clone('.length, -1)),
        { tags: [...st.tags], edits: [...st.edits] },
        outs,
      );
    } else if (a === 'pop_vlan') {
      st.tags.pop();
    } else if (a.startsWith('push_vlan(')) {
      st.tags.push(tagOf(a));
    } else if (/^[A-Za-z0-9_"-]+$/.test(a) && a !== 'drop') {
      outs.push(`${a}@[${st.tags.join('|')}]{${st.edits.join(',')}}`);
    } else {
      st.edits.push(a);
    }
  }
}

/**
 * The canonical form of `actions` for a packet whose outer VLAN tag is `vlan` ("vid=V,pcp=P"
 * as dpctl prints it, or undefined when untagged).
 */
export function canonicalActions(actions: string, vlan?: string): string {
  const tags = vlan === undefined ? [] : [tagOf(`(${vlan})`)];
  const outs: string[] = [];
  const st: State = { tags, edits: [] };
  walk(splitActions(actions), st, outs);
  if (outs.length === 0) return actions;
  return outs.sort().join(' ');
}
