// The mutator of the TypeScript fuzz engine (fuzz.mjs). It knows the inputs are JSON or YAML
// documents: most mutations parse the parent, change the tree (drop, duplicate, retype or
// rename keys, out-of-range numbers, addresses and names taken from elsewhere in the corpus,
// huge arrays, deep nesting) and print it again as JSON or YAML; the others edit the text
// (cut, splice, insert syntax tokens, re-indent YAML lines), to reach the parsers' error
// paths. A mutator never throws: a tree it cannot print falls back to a text edit.
import { parse, stringify } from 'yaml';

/** A small deterministic generator (splitmix32), so that a run can be repeated by its seed. */
export class Rng {
  constructor(seed) {
    this.s = seed >>> 0;
  }

  next() {
    this.s = (this.s + 0x9e3779b9) >>> 0;
    let z = this.s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** A whole number in [0, n). */
  int(n) {
    return n <= 1 ? 0 : this.next() % n;
  }

  chance(p) {
    return this.next() / 0x100000000 < p;
  }

  pick(a) {
    return a[this.int(a.length)];
  }

  /** A length biased towards small values, at most `max`. */
  len(max) {
    const bits = this.int(Math.max(1, Math.ceil(Math.log2(max + 1))) + 1);
    return Math.min(max, this.int(1 << bits) + 1);
  }
}

// Values a person gets wrong, or that sit on a limit the schemas or the address code draw.
// prettier-ignore
const NUMBERS = [
  0, -1, 1, 2, 7, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 4094, 4095, 4096, 65279, 65280,
  65535, 65536, 9000, 9001, 67, 68, 32767, 32768, 72767, 72768, 16777215, 16777216, 2 ** 31,
  2 ** 32, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e308, -0, 0.5, 1.5, -65536,
];
// prettier-ignore
const STRINGS = [
  '', ' ', 'a b', 'a/b', '.', '..', '/', '#', '-', '~', 'x'.repeat(300), '\u0000', '\ud800',
  '\u202e', '\ufeff', 'é', 'ﬀ', '🙂', 'İ', '__proto__', 'constructor', 'toString', 'hasOwnProperty',
  'valueOf', 'flow', 'NaN', 'Infinity', '-1', '0x10', '1e400', 'true', 'null', '0.0.0.0',
  '255.255.255.255', '10.0.0.0/8', '10.0.0.1/33', '0.0.0.0/0', '10.0.0.1/32', '10.0.0.0/31',
  '10.0.0.0/30', '169.254.106.114/31', '169.254.106.115/31', '1.2.3', '01.02.03.04', '1.2.3.4 ',
  '::', '::/0', '::1', '::1/128', 'fe80::1', 'fe80::1%eth0', '::ffff:10.0.0.1',
  '::ffff:10.0.0.0/120', '2001:db8::/64', '2001:db8::/129', '2001:db8::/127', '2001:db8::1',
  'fd00::/8', '00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff', 'FA:16:3E:00:00:01', '01:00:5e:00:00:01',
  'fa:16:3e:0:0:1', '0xffffffffffffffff', '0x0', '0x10000000000000000',
  'bd7982cb-bb78-4cc6-b3f0-f8a828947718', '28e6e267-f3', 'qvo28e6e267-f3', 'dvr', 'dvr_snat',
  'legacy', 'patch', 'vxlan', 'uplink', 'internal', 'dummy', 'system', 'secure', 'standalone',
  'access', 'trunk', 'br-int', 'br-tun', 'br-ex', 'patch-int', 'patch-tun', 'int-br-ex',
  'phy-br-ex', 'LOCAL', 'actions=drop', 'priority=1,actions=NORMAL', 'flows.txt', '/dev/null',
  'missing.txt', '-O', 'OpenFlow10',
];
// Every key the topology and scenario schemas know, and some they do not.
// prettier-ignore
const KEYS = [
  'comment', 'nodes', 'networks', 'routers', 'vms', 'dhcp_ports', 'floating_ips', 'name',
  'agent_mode', 'tunnel_ip', 'dvr_mac', 'underlay_mac', 'uplink', 'ofport', 'ofports',
  'local_vlans', 'cookies', 'br-int', 'br-tun', 'br-ex', 'fip_gateway', 'port_id', 'ip', 'mac',
  'id', 'vni', 'external', 'mtu', 'subnets', 'cidr', 'gateway_ip', 'distributed', 'snat_node',
  'gateway', 'network', 'interfaces', 'subnet', 'snat', 'fip_links', 'rfp', 'rfp_mac', 'fpr_mac',
  'vm', 'node', 'port', 'ips', 'rule_priority', 'bridges', 'ports', 'type', 'peer', 'options',
  'tag', 'trunks', 'vlan_mode', 'port_set', 'interface_set', 'fail_mode', 'protocols',
  'other_config', 'set', 'flows', 'groups', 'meters', 'routes', 'neighbors', 'prefix', 'dev', 'gw',
  'pkt_mark', 'underlay', 'namespaces', 'pmd', 'ovs_other_config', 'ofctl_args', 'keep_local_ip',
  'vsctl', 'appctl', 'remote_ip', 'local_ip', 'key', 'in_key', 'out_key', 'dst_port', 'flow-limit',
  'max-idle', 'oneNode', 'nodes ', 'Nodes', 'flow', '__proto__', 'constructor', 'toString', '',
];
// Syntax for the text edits: JSON and YAML punctuation, anchors, tags, documents, escapes.
// prettier-ignore
const TOKENS = [
  '{', '}', '[', ']', '"', "'", ':', ',', ': ', '- ', '\n', '\r\n', '\n  ', '\n- ', '  ', '\t',
  '#', '//', '/*', '\\', '\\u', '\\ud800', '\\u0000', '\\"', '&a ', '*a', '&a [1]', '<<: *a',
  '!!binary ', '!!str ', '!!int ', '!!float ', '!!set ', '!!omap ', '!!map ', '!!seq ',
  '!!timestamp ', '!foo ', '? ', '|', '>', '|-', '---\n', '...\n', '%YAML 1.1\n', '%TAG ! x\n',
  'null', 'true', 'false', '~', '.nan', '.inf', '-.inf', '0x1f', '0o17', '1e999', '-0', '1_000',
  '\ufeff', '\u0000', '\u2028', '\u00a0', '🙂', '"__proto__": ', '__proto__: ', '[[[[', ']]]]',
  '{"a":', '}}}}',
];

/** Own-property set, so that `__proto__` stays a key instead of changing the prototype. */
function put(obj, key, value) {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function isObj(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Every [parent, key] of a tree, without recursion (trees can be deep). */
function slots(root) {
  const out = [];
  const stack = [root];
  while (stack.length > 0 && out.length < 20000) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        out.push([v, i]);
        if (x !== null && typeof x === 'object') stack.push(x);
      });
    } else if (isObj(v)) {
      for (const k of Object.keys(v)) {
        out.push([v, k]);
        if (v[k] !== null && typeof v[k] === 'object') stack.push(v[k]);
      }
    }
  }
  return out;
}

/** Strings and numbers of a tree, to reuse as references (names, addresses) elsewhere. */
export function scalars(root) {
  const strings = new Set();
  const numbers = new Set();
  for (const [p, k] of slots(root)) {
    const v = p[k];
    if (typeof v === 'string' && v.length <= 200) strings.add(v);
    if (typeof v === 'number') numbers.add(v);
  }
  return { strings: [...strings], numbers: [...numbers] };
}

function clone(v) {
  return v === undefined ? undefined : structuredClone(v);
}

/** A string with a small edit: a digit moved up or down, a character added, cut or changed. */
function editString(rng, s) {
  const digits = [...s.matchAll(/\d+/g)];
  if (digits.length > 0 && rng.chance(0.6)) {
    const m = rng.pick(digits);
    const n = Number(m[0]);
    const v = rng.pick([n + 1, n - 1, n + 256, n * 2, 0, 255, 256, 999, rng.int(300)]);
    return s.slice(0, m.index) + String(v) + s.slice(m.index + m[0].length);
  }
  const hex = [...s.matchAll(/[0-9a-f]{2}/gi)];
  if (hex.length > 0 && rng.chance(0.4)) {
    const m = rng.pick(hex);
    const v = rng.int(256).toString(16).padStart(2, '0');
    return s.slice(0, m.index) + v + s.slice(m.index + 2);
  }
  const at = rng.int(s.length + 1);
  switch (rng.int(4)) {
    case 0:
      return s.slice(0, at) + s.slice(at + 1);
    case 1:
      return s.slice(0, at) + rng.pick(['-', ':', '/', '.', ' ', 'x', '0', 'é']) + s.slice(at);
    case 2:
      return s + s;
    default:
      return s.toUpperCase();
  }
}

/** A value of another type, or a limit value of the same type. */
function newValue(rng, old, ctx) {
  const r = rng.int(12);
  if (r < 4 && typeof old === 'string') {
    return rng.chance(0.5) ? editString(rng, old) : rng.pick(ctx.pool.strings);
  }
  if (r < 4 && typeof old === 'number') {
    return rng.pick([old + 1, old - 1, -old, old * 2, old + 0.5, rng.pick(ctx.pool.numbers)]);
  }
  switch (r) {
    case 4:
      return rng.pick(NUMBERS);
    case 5:
      return rng.pick(STRINGS);
    case 6:
      return rng.pick(ctx.pool.strings);
    case 7:
      return rng.pick([null, true, false, [], {}]);
    case 8:
      return typeof old === 'number' ? String(old) : typeof old === 'string' ? Number(old) : old;
    case 9:
      return [clone(old)];
    case 10: {
      const o = {};
      put(o, rng.pick(KEYS), clone(old));
      return o;
    }
    default: {
      // A subtree from elsewhere in this document or another one.
      const from = rng.chance(0.5) || ctx.otherTree === undefined ? ctx.tree : ctx.otherTree;
      const all = slots(from);
      if (all.length === 0) return rng.pick(STRINGS);
      const [p, k] = rng.pick(all);
      return clone(p[k]);
    }
  }
}

/** Nested arrays or objects `depth` deep around `leaf`. */
function deep(rng, depth, leaf) {
  const asArray = rng.chance(0.5);
  const key = rng.pick(['nodes', 'a', 'bridges', 'subnets']);
  let v = leaf;
  for (let i = 0; i < depth; i++) {
    if (asArray) v = [v];
    else {
      const o = {};
      put(o, key, v);
      v = o;
    }
  }
  return v;
}

/** One change to a parsed document, in place; returns the (possibly new) root. */
function mutateTree(rng, root, ctx) {
  const all = slots(root);
  if (all.length === 0 || rng.chance(0.02)) {
    return rng.chance(0.5) ? newValue(rng, root, ctx) : { [rng.pick(KEYS)]: clone(root) };
  }
  const [parent, key] = rng.pick(all);
  const value = parent[key];
  switch (rng.int(11)) {
    case 0: // drop the key or the element
      if (Array.isArray(parent)) parent.splice(key, 1);
      else delete parent[key];
      break;
    case 1: // duplicate an element: duplicate names, MACs, addresses, ofports
      if (Array.isArray(parent)) {
        // Half the time a near copy: some strings and numbers changed, so that the copy
        // passes the checks its exact twin fails (another address, the same node).
        const copy = clone(value);
        if (rng.chance(0.5)) {
          for (const [p, k] of slots(copy)) {
            if (!rng.chance(0.3)) continue;
            if (typeof p[k] === 'string') p[k] = editString(rng, p[k]);
            else if (typeof p[k] === 'number') p[k] = p[k] + 1;
          }
        }
        parent.splice(rng.int(parent.length + 1), 0, copy);
      } else if (Array.isArray(value)) value.push(clone(rng.pick(value)));
      else put(parent, key, newValue(rng, value, ctx));
      break;
    case 2: {
      // many copies of an element: huge arrays
      const arr = Array.isArray(parent) ? parent : Array.isArray(value) ? value : undefined;
      if (arr && arr.length > 0) {
        // As many as fit in the engine's length limit, so that the copies stay printable.
        const x = rng.pick(arr);
        const fit = Math.floor((2 * ctx.maxLen) / printedSize(x, 2 * ctx.maxLen));
        for (let n = Math.min(rng.len(2000), fit); n > 0; n--) {
          arr.push(rng.chance(0.5) ? x : clone(x));
        }
      } else put(parent, key, newValue(rng, value, ctx));
      break;
    }
    case 3: // an out-of-range number, a retyped value, a name from elsewhere
    case 4:
    case 5:
      if (Array.isArray(parent)) parent[key] = newValue(rng, value, ctx);
      else put(parent, key, newValue(rng, value, ctx));
      break;
    case 6: // add a key, known or not
      if (isObj(value)) put(value, rng.pick(KEYS), newValue(rng, undefined, ctx));
      else if (isObj(parent)) put(parent, rng.pick(KEYS), newValue(rng, value, ctx));
      else parent.push(newValue(rng, value, ctx));
      break;
    case 7: // rename a key: typos, known keys in the wrong place
      if (isObj(parent)) {
        const name = rng.chance(0.5) ? rng.pick(KEYS) : editString(rng, String(key));
        delete parent[key];
        put(parent, name, value);
      }
      break;
    case 8: // swap two elements (moves ofports, bind order, first-one-wins choices)
      if (Array.isArray(parent) && parent.length > 1) {
        const j = rng.int(parent.length);
        [parent[key], parent[j]] = [parent[j], parent[key]];
      }
      break;
    case 9: // deep nesting
      put(parent, key, deep(rng, rng.len(5000), rng.chance(0.5) ? clone(value) : 1));
      break;
    default: // a subtree of the other document
      put(parent, key, newValue(rng, value, { ...ctx, tree: ctx.otherTree ?? ctx.tree }));
  }
  return root;
}

/** One change to the text. */
function mutateText(rng, text, other) {
  const at = rng.int(text.length + 1);
  switch (rng.int(9)) {
    case 0: // cut a span
      return text.slice(0, at) + text.slice(at + rng.len(text.length - at));
    case 1:
    case 2: // insert syntax
      return text.slice(0, at) + rng.pick(TOKENS) + text.slice(at);
    case 3: {
      // insert random characters
      let s = '';
      for (let n = rng.len(8); n > 0; n--) {
        s += String.fromCharCode(rng.chance(0.8) ? 32 + rng.int(95) : rng.int(0x10000));
      }
      return text.slice(0, at) + s + text.slice(at);
    }
    case 4: {
      // copy a span of this text or the other one somewhere
      const src = rng.chance(0.5) ? text : other;
      const from = rng.int(src.length);
      const span = src.slice(from, from + rng.len(200));
      return text.slice(0, at) + span + text.slice(at);
    }
    case 5: // cross over: the start of one, the end of the other
      return text.slice(0, at) + other.slice(rng.int(other.length + 1));
    case 6: {
      // a number
      const m = [...text.matchAll(/\d+/g)];
      if (m.length === 0) return text + rng.pick(NUMBERS);
      const x = rng.pick(m);
      return (
        text.slice(0, x.index) + String(rng.pick(NUMBERS)) + text.slice(x.index + x[0].length)
      );
    }
    case 7: {
      // re-indent, drop or repeat a line (YAML structure lives in the indentation)
      const lines = text.split('\n');
      const i = rng.int(lines.length);
      const r = rng.int(4);
      if (r === 0) lines[i] = `  ${lines[i]}`;
      else if (r === 1) lines[i] = lines[i].replace(/^ {1,2}/, '');
      else if (r === 2) lines.splice(i, 1);
      else lines.splice(i, 0, lines[rng.int(lines.length)]);
      return lines.join('\n');
    }
    default: {
      // deep nesting as text
      const n = rng.len(20000);
      const [open, close] = rng.pick([
        ['[', ']'],
        ['{"a":', '}'],
        ['- ', ''],
      ]);
      return text.slice(0, at) + open.repeat(n) + '1' + close.repeat(n) + text.slice(at);
    }
  }
}

/** The parsed form of a corpus text, or undefined when it does not parse. */
export function parseEntry(text) {
  const json = /^\uFEFF?\s*\{/.test(text);
  try {
    const tree = json
      ? JSON.parse(text.replace(/^\uFEFF/, ''))
      : parse(text, { logLevel: 'silent' });
    // YAML aliases make a short text stand for a large tree; such an entry gets text edits
    // only.
    if (printedSize(tree, 1 << 16) > 1 << 16) return undefined;
    return { tree, json };
  } catch {
    return undefined;
  }
}

/**
 * True when the printed tree would be longer than `budget` characters, counted roughly (a
 * shared subtree counts at each place it appears, and every value at depth d is indented by
 * 2d, as the printers indent it) and with an early stop, so that a mutation that multiplied
 * arrays several times, or nested values thousands deep (whose indentation alone grows as the
 * square of the depth), is dropped before a printer tries gigabytes.
 */
function tooBig(tree, budget) {
  return printedSize(tree, budget) > budget;
}

/**
 * The rough printed size of a tree, counted up to a little past `cap`. Every value still to
 * be counted prints as 3 characters at least, which bounds the work list (a subtree shared a
 * thousand times would otherwise fill it with millions of entries).
 */
function printedSize(tree, cap) {
  let size = 0;
  const stack = [[tree, 0]];
  while (stack.length > 0 && size + 3 * stack.length <= cap) {
    const [v, depth] = stack.pop();
    size += 2 * depth + (typeof v === 'string' ? v.length + 3 : 4);
    if (v !== null && typeof v === 'object') {
      for (const k of Object.keys(v)) stack.push([v[k], depth + 1]);
    }
  }
  return stack.length > 0 ? Math.max(size + 3 * stack.length, cap + 1) : size;
}

function print(rng, tree, json) {
  if (json) return JSON.stringify(tree, null, rng.chance(0.7) ? 2 : undefined) ?? 'null';
  return stringify(tree, {
    lineWidth: 0,
    blockQuote: rng.pick([true, 'literal', 'folded']),
    collectionStyle: rng.chance(0.85) ? 'any' : 'flow',
    aliasDuplicateObjects: rng.chance(0.3),
  });
}

/**
 * A child of `entry` ({ text, parsed }), with `other` (another entry) for crossovers and
 * `pool` ({ strings, numbers } seen in the corpus) for references; `maxLen` is the length
 * beyond which the engine drops a child.
 */
export function mutate(rng, entry, other, pool, maxLen) {
  const steps = 1 + rng.int(4);
  let text = entry.text;
  if (entry.parsed !== undefined && rng.chance(0.75)) {
    try {
      let tree = clone(entry.parsed.tree);
      const ctx = { tree, otherTree: other.parsed?.tree, pool, maxLen };
      for (let i = 0; i < steps; i++) {
        tree = mutateTree(rng, tree, ctx);
        ctx.tree = tree;
        // Checked at every step, so that growth cannot compound over the next steps.
        if (tooBig(tree, 2 * maxLen)) throw new RangeError('too big to print');
      }
      if (tooBig(tree, 2 * maxLen)) throw new RangeError('too big to print');
      const json = rng.chance(0.9) ? entry.parsed.json : !entry.parsed.json;
      // The YAML printer gives undefined for a tree that is undefined.
      const printed = print(rng, tree, json);
      if (typeof printed !== 'string') throw new TypeError('nothing to print');
      return rng.chance(0.1) ? mutateText(rng, printed, other.text) : printed;
    } catch {
      // A tree too big to print, or one the printers refuse (too deep): edit the text.
    }
  }
  for (let i = 0; i < steps; i++) text = mutateText(rng, text, other.text);
  return text;
}
