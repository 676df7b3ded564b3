/**
 * The shape of a Neutron topology file, as zod schemas. A topology describes a cloud the way
 * an operator knows it (nodes and their L2/L3 agent modes, networks and subnets, routers,
 * VMs, floating IPs); `compile` turns it into the raw multi-node scenario the engine runs.
 *
 * Objects are strict, as in scenario files: an unknown key is reported with a guess for the
 * likely typo. Everything the reference gives a concrete value for (local VLANs, ofports,
 * port ids, MACs of router ports, cookies, the link-local FIP addresses, the FIP rule
 * priority) can be written explicitly; anything left out gets a deterministic default.
 * Cross-references (a VM's node, a router's subnet, ...) are checked after the shape, in
 * topology.ts.
 */
import { z } from 'zod';
import { intIn, isCidr, isIpAddress, isMac } from '../scenario/schema.js';
import { isIP } from 'node:net';

const str = (expected: string) =>
  z.string({ invalid_type_error: expected, required_error: expected });

/**
 * A name used in references and in port references: no '/' and no spaces, and not "." or
 * ".." (node, VM and uplink names become names in the compiled scenario, which refuses them).
 */
const name = str('expected a name')
  .min(1, 'expected a non-empty name')
  .regex(/^[^/\s]+$/, "expected a name without '/' or spaces")
  .refine((s) => s !== '.' && s !== '..', { message: 'expected a name other than "." or ".."' });

const mac = str('expected a MAC address like fa:16:3e:76:47:75').refine(isMac, {
  message: 'expected a MAC address like fa:16:3e:76:47:75',
});
const ipAddr = str('expected an IP address like 10.0.0.8').refine(isIpAddress, {
  message: 'expected an IP address like 10.0.0.8',
});
const ipv4 = str('expected an IPv4 address like 192.168.1.12').refine((s) => isIP(s) === 4, {
  message: 'expected an IPv4 address like 192.168.1.12',
});
const cidr = str('expected a prefix like 10.0.0.0/26').refine(isCidr, {
  message: 'expected a prefix like 10.0.0.0/26',
});
const ipv4Cidr = str(
  'expected an IPv4 address with a prefix length like 169.254.106.114/31',
).refine((s) => isCidr(s) && isIP(s.split('/')[0]) === 4, {
  message: 'expected an IPv4 address with a prefix length like 169.254.106.114/31',
});

/** A UUID, or at least the 11 characters of it that device names use (`28e6e267-f3`). */
const portId = str(
  'expected a port id (a UUID, or its first 11 characters like 28e6e267-f3)',
).regex(/^[0-9a-f][0-9a-f-]{10,35}$/, {
  message: 'expected a port id (a UUID, or its first 11 characters like 28e6e267-f3)',
});
const uuid = str('expected a UUID like bd7982cb-bb78-4cc6-b3f0-f8a828947718').regex(
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  { message: 'expected a UUID like bd7982cb-bb78-4cc6-b3f0-f8a828947718' },
);
/** A 64-bit flow cookie: `0x` and up to 16 hex digits, or a safe integer. */
const COOKIE = 'expected a cookie like 0x9c6f4b1c3e2a11d0';
const cookie = z.union(
  [
    z.string().regex(/^0x[0-9a-fA-F]{1,16}$/, COOKIE),
    z.number().int(COOKIE).min(0, COOKIE).max(Number.MAX_SAFE_INTEGER, COOKIE),
  ],
  { errorMap: () => ({ message: COOKIE }) },
);

const ofport = intIn(1, 65279);
const vlan = intIn(1, 4094);
const comment = z.string().optional();

const uplinkSchema = z
  .object({ name: name.optional(), ofport: ofport.optional(), comment })
  .strict();

const fipGatewaySchema = z
  .object({ port_id: portId.optional(), ip: ipAddr.optional(), mac: mac.optional(), comment })
  .strict();

const nodeSchema = z
  .object({
    name,
    agent_mode: z.enum(['dvr', 'dvr_snat', 'legacy'], {
      errorMap: () => ({ message: 'expected dvr, dvr_snat or legacy' }),
    }),
    tunnel_ip: ipv4,
    dvr_mac: mac.optional(),
    underlay_mac: mac.optional(),
    uplink: uplinkSchema.optional(),
    /** ofports by port name, on any of the node's bridges. */
    ofports: z
      .record(ofport, { invalid_type_error: 'expected an object of port: ofport' })
      .optional(),
    /** Local VLAN by network name. */
    local_vlans: z
      .record(vlan, { invalid_type_error: 'expected an object of network: vlan' })
      .optional(),
    cookies: z
      .object({
        'br-int': cookie.optional(),
        'br-tun': cookie.optional(),
        'br-ex': cookie.optional(),
      })
      .strict()
      .optional(),
    /** The fg- port of the node's FIP namespace. */
    fip_gateway: fipGatewaySchema.optional(),
    comment,
  })
  .strict();

const subnetSchema = z
  .object({
    name,
    id: uuid.optional(),
    cidr,
    gateway_ip: ipAddr.optional(),
    comment,
  })
  .strict();

const networkSchema = z
  .object({
    name,
    id: uuid.optional(),
    vni: intIn(1, 16777215).optional(),
    external: z.boolean({ invalid_type_error: 'expected true or false' }).optional(),
    mtu: intIn(68, 9000).optional(),
    subnets: z.array(subnetSchema, { invalid_type_error: 'expected an array of subnets' }),
    comment,
  })
  .strict();

const routerPortSchema = {
  ip: ipAddr.optional(),
  mac: mac.optional(),
  port_id: portId.optional(),
};

const interfaceSchema = z
  .object({
    subnet: name,
    ...routerPortSchema,
    /** The sg- port of this subnet in the snat namespace. */
    snat: z
      .object({ ...routerPortSchema, comment })
      .strict()
      .optional(),
    comment,
  })
  .strict();

const fipLinkSchema = z
  .object({
    /** The rfp- end of the veth pair, with its /31 (the fpr- end takes the other address). */
    rfp: ipv4Cidr.optional(),
    rfp_mac: mac.optional(),
    fpr_mac: mac.optional(),
    comment,
  })
  .strict();

const routerSchema = z
  .object({
    name,
    id: uuid.optional(),
    distributed: z.boolean({ invalid_type_error: 'expected true or false' }).optional(),
    snat_node: name.optional(),
    gateway: z
      .object({ network: name, ...routerPortSchema, comment })
      .strict()
      .optional(),
    interfaces: z.array(interfaceSchema, {
      invalid_type_error: 'expected an array of interfaces',
    }),
    /** Per node: the rfp-/fpr- link of this router to the node's FIP namespace. */
    fip_links: z.record(fipLinkSchema).optional(),
    comment,
  })
  .strict();

const vmSchema = z
  .object({
    name,
    node: name,
    network: name,
    ip: ipAddr,
    mac: mac.optional(),
    port_id: portId.optional(),
    /** The br-int port name (`qvo` + the first 11 characters of the port id). */
    port: str('expected a port name like qvo28e6e267-f3')
      .regex(/^qvo[0-9a-f][0-9a-f-]{10}$/, 'expected a port name like qvo28e6e267-f3')
      .optional(),
    ofport: ofport.optional(),
    comment,
  })
  .strict();

const dhcpSchema = z
  .object({
    network: name,
    node: name,
    ips: z.array(ipAddr, { invalid_type_error: 'expected an array of IP addresses' }),
    mac: mac.optional(),
    port_id: portId.optional(),
    comment,
  })
  .strict();

const fipSchema = z
  .object({
    ip: ipAddr,
    vm: name,
    /** Priority of the `from FIXED lookup 16` rule (a pool from 32768 to 72767). */
    rule_priority: intIn(32768, 72767).optional(),
    comment,
  })
  .strict();

/** A whole Neutron topology. */
export const topologySchema = z
  .object({
    comment,
    nodes: z.array(nodeSchema, { invalid_type_error: 'expected an array of nodes' }),
    networks: z.array(networkSchema, { invalid_type_error: 'expected an array of networks' }),
    routers: z
      .array(routerSchema, { invalid_type_error: 'expected an array of routers' })
      .optional(),
    vms: z.array(vmSchema, { invalid_type_error: 'expected an array of VMs' }).optional(),
    dhcp_ports: z
      .array(dhcpSchema, { invalid_type_error: 'expected an array of DHCP ports' })
      .optional(),
    floating_ips: z
      .array(fipSchema, { invalid_type_error: 'expected an array of floating IPs' })
      .optional(),
  })
  .strict();

export type TopologyFile = z.infer<typeof topologySchema>;
export type NodeFile = z.infer<typeof nodeSchema>;
export type NetworkFile = z.infer<typeof networkSchema>;
export type SubnetFile = z.infer<typeof subnetSchema>;
export type RouterFile = z.infer<typeof routerSchema>;
export type InterfaceFile = z.infer<typeof interfaceSchema>;
export type VmFile = z.infer<typeof vmSchema>;
export type DhcpFile = z.infer<typeof dhcpSchema>;
export type FipFile = z.infer<typeof fipSchema>;

/** True when a parsed document looks like a Neutron topology rather than a raw scenario. */
export function isTopology(root: unknown): boolean {
  return (
    root !== null &&
    typeof root === 'object' &&
    !Array.isArray(root) &&
    ('networks' in root || 'vms' in root)
  );
}
