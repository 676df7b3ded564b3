/**
 * The shapes of scenario files, as zod schemas, and the translation of zod issues into one
 * line a person can act on.
 *
 * Two formats share the bridge and port shapes:
 * - one-node: exactly the scenario JSON of `tools/ovs-oracle` (top-level `bridges[]`). Every
 *   key the oracle knows is accepted; those dvrlab has no use for (`pmd`, `ovs_other_config`,
 *   `ofctl_args`, `other_config`, `set`, `vsctl`, `appctl`, `comment`, `keep_local_ip`,
 *   `protocols`, `interface_set`, `pkt_mark`) are accepted and ignored.
 * - multi-node raw scenario: `nodes[]`, each with `name`, `underlay {ip, mac}`, `bridges[]`
 *   and `namespaces[]`.
 * Objects are strict: an unknown key is an error, so a typo (`flow` for `flows`) is caught
 * instead of silently dropping the flows. Messages say what was expected; the caller adds the
 * file, position and JSON path, and what was found.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { formatPath, type PathSeg } from './parse.js';

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** True for `aa:bb:cc:dd:ee:ff`. */
export function isMac(s: string): boolean {
  return MAC_RE.test(s);
}

/** True for an IPv4 or IPv6 address without a prefix length. */
export function isIpAddress(s: string): boolean {
  return isIP(s) !== 0;
}

/** True for `ADDR/LEN` with LEN within the address family's width. */
export function isCidr(s: string): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
  if (!m) return false;
  const family = isIP(m[1]);
  const len = Number(m[2]);
  return (family === 4 && len <= 32) || (family === 6 && len <= 128);
}

/** True for an address with or without a prefix length. */
export function isIpMaybeCidr(s: string): boolean {
  return isIpAddress(s) || isCidr(s);
}

const str = (expected: string) =>
  z.string({ invalid_type_error: expected, required_error: expected });

/** A whole number in [lo, hi]. */
export const intIn = (lo: number, hi: number) => {
  const expected = `expected a number from ${lo} to ${hi}`;
  return z
    .number({ invalid_type_error: expected, required_error: expected })
    .int(expected)
    .min(lo, expected)
    .max(hi, expected);
};

/** A bridge, port, node or VM name: used in port references, so no '/' and no spaces. */
const objName = str('expected a name')
  .min(1, 'expected a non-empty name')
  .regex(/^[^/\s]+$/, "expected a name without '/' or spaces")
  .refine((s) => s !== '.' && s !== '..', { message: 'expected a name other than "." or ".."' });

const mac = str('expected a MAC address like aa:bb:cc:dd:ee:ff').regex(
  MAC_RE,
  'expected a MAC address like aa:bb:cc:dd:ee:ff',
);
const ipAddr = str('expected an IP address like 192.168.1.12').refine(isIpAddress, {
  message: 'expected an IP address like 192.168.1.12',
});
const cidr = str('expected an address with a prefix length like 192.168.1.0/24').refine(isCidr, {
  message: 'expected an address with a prefix length like 192.168.1.0/24',
});
const ipMaybeCidr = str('expected an IP address like 192.168.1.12 or 192.168.1.12/24').refine(
  isIpMaybeCidr,
  { message: 'expected an IP address like 192.168.1.12 or 192.168.1.12/24' },
);

const scalar = z.union([z.string(), z.number(), z.boolean()], {
  errorMap: () => ({ message: 'expected a string, number or boolean' }),
});
const stringMap = z.record(scalar, {
  errorMap: (issue, ctx) =>
    issue.code === 'invalid_type'
      ? { message: 'expected an object' }
      : { message: ctx.defaultError },
});
const anyArray = z.array(z.unknown(), {
  errorMap: () => ({ message: 'expected an array' }),
});

/** The port types dvrlab knows; dpdk/afxdp/"" are what the oracle turns into dummy ports. */
export const PORT_TYPES = [
  'internal',
  'dummy',
  'system',
  'tap',
  'dpdk',
  'afxdp',
  '',
  'patch',
  'vxlan',
  'uplink',
] as const;

const portType = z.enum(PORT_TYPES, {
  errorMap: () => ({
    message: `expected a port type: ${PORT_TYPES.filter((t) => t !== '').join(', ')}`,
  }),
});

const flowsSchema = z.union([z.string(), z.array(z.string())], {
  errorMap: () => ({
    message: 'expected a flows file name, a multi-line string or an array of flow strings',
  }),
});

const portSchema = z
  .object({
    name: objName,
    ofport: intIn(1, 65279),
    type: portType.optional(),
    peer: objName.optional(),
    options: stringMap.optional(),
    tag: intIn(0, 4095).optional(),
    trunks: z
      .array(intIn(0, 4095), { invalid_type_error: 'expected an array of VLAN ids' })
      .optional(),
    vlan_mode: z
      .enum(['access', 'native-tagged', 'native-untagged', 'trunk', 'dot1q-tunnel'], {
        errorMap: () => ({
          message: 'expected access, native-tagged, native-untagged, trunk or dot1q-tunnel',
        }),
      })
      .optional(),
    mtu: intIn(68, 65535).optional(),
    port_set: stringMap.optional(),
    interface_set: stringMap.optional(),
    vm: objName.optional(),
    comment: z.string().optional(),
  })
  .strict();

const bridgeSchema = z
  .object({
    name: objName,
    fail_mode: z
      .enum(['secure', 'standalone'], {
        errorMap: () => ({ message: 'expected secure or standalone' }),
      })
      .optional(),
    protocols: z.string().optional(),
    mac: mac.optional(),
    ip: cidr.optional(),
    other_config: stringMap.optional(),
    set: stringMap.optional(),
    flows: flowsSchema.optional(),
    groups: anyArray.optional(),
    meters: anyArray.optional(),
    ports: z.array(portSchema, { invalid_type_error: 'expected an array of ports' }).optional(),
    comment: z.string().optional(),
  })
  .strict();

const routeSchema = z
  .object({
    prefix: cidr,
    dev: objName,
    gw: ipAddr.optional(),
    pkt_mark: z.union([z.number(), z.null()]).optional(),
  })
  .strict();

const neighborSchema = z.object({ dev: objName, ip: ipAddr, mac }).strict();

const bridgesArray = z.array(bridgeSchema, { invalid_type_error: 'expected an array of bridges' });
const routesArray = z.array(routeSchema, { invalid_type_error: 'expected an array of routes' });
const neighborsArray = z.array(neighborSchema, {
  invalid_type_error: 'expected an array of neighbors',
});

/** The ovs-oracle scenario JSON. */
export const oneNodeSchema = z
  .object({
    comment: z.string().optional(),
    pmd: z.boolean().optional(),
    mtu: intIn(68, 65535).optional(),
    ovs_other_config: stringMap.optional(),
    ofctl_args: z.array(z.string()).optional(),
    keep_local_ip: z.boolean().optional(),
    bridges: bridgesArray,
    routes: routesArray.optional(),
    neighbors: neighborsArray.optional(),
    vsctl: anyArray.optional(),
    appctl: anyArray.optional(),
  })
  .strict();

const nodeSchema = z
  .object({
    name: objName,
    comment: z.string().optional(),
    underlay: z
      .object({ ip: ipMaybeCidr, mac, comment: z.string().optional() })
      .strict()
      .optional(),
    mtu: intIn(68, 65535).optional(),
    bridges: bridgesArray,
    routes: routesArray.optional(),
    neighbors: neighborsArray.optional(),
    namespaces: z
      .array(z.unknown(), { invalid_type_error: 'expected an array of namespaces' })
      .optional(),
  })
  .strict();

/** The multi-node raw scenario. */
export const multiNodeSchema = z
  .object({
    comment: z.string().optional(),
    nodes: z.array(nodeSchema, { invalid_type_error: 'expected an array of nodes' }),
  })
  .strict();

export type OneNodeFile = z.infer<typeof oneNodeSchema>;
export type MultiNodeFile = z.infer<typeof multiNodeSchema>;
export type BridgeFile = z.infer<typeof bridgeSchema>;
export type PortFile = z.infer<typeof portSchema>;
export type RouteFile = z.infer<typeof routeSchema>;
export type NeighborFile = z.infer<typeof neighborSchema>;

/** Describes a found value briefly: `"x"`, `12`, `null`, `an array`, `an object`. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') {
    return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  }
  return String(v);
}

function valueAt(root: unknown, path: readonly PathSeg[]): { found: boolean; value: unknown } {
  let cur: unknown = root;
  for (const seg of path) {
    if (
      cur === null ||
      typeof cur !== 'object' ||
      !Object.prototype.hasOwnProperty.call(cur, seg)
    ) {
      return { found: false, value: undefined };
    }
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return { found: true, value: cur };
}

/** The keys a strict object schema accepts, found by walking `schema` along `path`. */
function knownKeys(schema: z.ZodTypeAny, path: readonly PathSeg[]): string[] {
  let cur: z.ZodTypeAny = schema;
  const unwrap = (s: z.ZodTypeAny): z.ZodTypeAny => {
    for (;;) {
      if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap();
      else if (s instanceof z.ZodEffects) s = s.innerType();
      else if (s instanceof z.ZodDefault) s = s.removeDefault();
      else return s;
    }
  };
  for (const seg of path) {
    cur = unwrap(cur);
    if (cur instanceof z.ZodArray && typeof seg === 'number') cur = cur.element;
    else if (cur instanceof z.ZodObject && typeof seg === 'string') {
      const next = (cur.shape as Record<string, z.ZodTypeAny>)[seg];
      if (!next) return [];
      cur = next;
    } else return [];
  }
  cur = unwrap(cur);
  return cur instanceof z.ZodObject ? Object.keys(cur.shape as object) : [];
}

/** Edit distance counting an adjacent transposition as one edit, for "did you mean" hints. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/** The closest candidate within a small edit distance, if any. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Math.max(1, Math.min(3, Math.floor(word.length / 3)));
  const w = word.toLowerCase();
  for (const c of candidates) {
    // The distance is at least the difference in length: skipping candidates it rules out
    // keeps a long word (a key of thousands of characters in a hostile file) from costing an
    // edit-distance table each.
    const lc = c.toLowerCase();
    if (Math.abs(w.length - lc.length) > bestDist) continue;
    const d = editDistance(w, lc);
    if (d <= bestDist) {
      best = c;
      bestDist = d - 1;
    }
  }
  return best;
}

/** One zod issue, reduced to where it is and what to say. */
export interface IssueReport {
  path: PathSeg[];
  message: string;
}

/**
 * Picks the issue to report and words it. Zod lists issues in schema order; when an object
 * has both an unknown key and a missing or wrong one, the unknown key (a likely typo) is the
 * one to mention.
 */
export function reportIssue(
  schema: z.ZodTypeAny,
  issues: readonly z.ZodIssue[],
  root: unknown,
): IssueReport {
  let issue = issues[0];
  const parentOf = (p: readonly PathSeg[]) => formatPath(p.slice(0, -1));
  const unknownKeys = issues.find(
    (i) =>
      i.code === 'unrecognized_keys' &&
      (formatPath(i.path) === parentOf(issue.path) ||
        formatPath(i.path) === formatPath(issue.path)),
  );
  if (unknownKeys) issue = unknownKeys;

  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0];
    const known = knownKeys(schema, issue.path);
    const guess = closest(key, known);
    const hint = guess
      ? ` (did you mean "${guess}"?)`
      : known.length > 0
        ? `; expected one of: ${known.join(', ')}`
        : '';
    return { path: [...issue.path, key], message: `unknown key "${key}"${hint}` };
  }

  const { found, value } = valueAt(root, issue.path);
  let expected = issue.message;
  if (issue.code === 'invalid_type' && /^(Required|Expected )/.test(expected)) {
    const article = issue.expected === 'array' || issue.expected === 'object' ? 'an' : 'a';
    expected = `expected ${article} ${issue.expected}`;
  } else if (!expected.startsWith('expected')) {
    expected = `expected ${expected.charAt(0).toLowerCase()}${expected.slice(1)}`;
  }
  const message = found ? `${expected}, got ${describeValue(value)}` : `missing (${expected})`;
  return { path: [...issue.path], message };
}
