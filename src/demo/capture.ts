/**
 * The capture `dvrlab demo` replays: the four packet paths of the DVR reference (§5) on the
 * built-in seed devstack, each in both directions, with the ARP a real VM or gateway would
 * send first. Addresses come from the topology, so the capture follows the seed.
 *
 * Hosts outside the cloud are not emulated: the external gateway 172.24.4.1 (and 8.8.8.8
 * behind it) is a MAC of our choosing whose frames are inputs on a node's uplink.
 *
 * Every packet names the port it should end on (`to`): the demo follows the packet's trace
 * towards that port, and says so when it does not get there.
 */
import { ETH_ARP, arp, eth, icmpFrame, udpFrame } from '../packets.js';
import type { Router, Topology, Vm } from '../neutron/topology.js';

/** The external gateway's MAC (172.24.4.1, outside the cloud). */
export const EXTERNAL_GW_MAC = '02:24:04:00:00:01';
/** A host on the Internet, behind the external gateway. */
export const INTERNET_HOST = '8.8.8.8';

export interface DemoPacket {
  label: string; // "ICMP echo request 10.0.0.8 -> 10.1.0.10"
  port: string; // the input port (a VM name or NODE/uplink)
  to: string; // the port where it should leave (same forms)
  frame: Buffer;
}

export interface DemoPath {
  id: string; // "5.2"
  title: string;
  packets: DemoPacket[];
}

const BROADCAST = 'ff:ff:ff:ff:ff:ff';
const ZERO_MAC = '00:00:00:00:00:00';

function ipv4Of(vm: Vm): string {
  const ip = vm.port.fixedIps.find((f) => f.subnet.family === 4);
  if (!ip) throw new Error(`${vm.name} has no IPv4 address`);
  return ip.ip;
}

function arpRequest(sha: string, spa: string, tpa: string): Buffer {
  return eth(
    { dst: BROADCAST, src: sha, type: ETH_ARP },
    arp({ op: 1, sha, spa, tha: ZERO_MAC, tpa }),
  );
}

function ping(
  l2: { src: string; dst: string },
  src: string,
  dst: string,
  reply: boolean,
  id: number,
): Buffer {
  return icmpFrame(
    l2,
    { src, dst, id, ttl: 64 },
    { type: reply ? 0 : 8, rest: (id << 16) | 1, payload: Buffer.from('dvrlab demo') },
  );
}

function dns(
  l2: { src: string; dst: string },
  src: string,
  dst: string,
  sport: number,
  dport: number,
) {
  return udpFrame(
    l2,
    { src, dst, id: sport & 0xffff, ttl: 64 },
    { sport, dport, payload: Buffer.from('dvrlab demo query') },
  );
}

/** The four paths of reference §5 on `topo` (the built-in devstack-dvr). */
export function demoPaths(topo: Topology): DemoPath[] {
  const vm = (name: string): Vm => {
    const v = topo.vms.find((x) => x.name === name);
    if (!v) throw new Error(`the topology has no VM ${name}`);
    return v;
  };
  const router: Router | undefined = topo.routers[0];
  if (!router?.gateway) throw new Error('the topology has no router with a gateway');
  const gwOf = (v: Vm) => {
    const itf = router.interfaces.find(
      (i) => i.subnet.network === v.network && i.subnet.family === 4,
    );
    if (!itf) throw new Error(`router ${router.name} has no interface on ${v.network.name}`);
    return { mac: itf.qr.mac, ip: itf.qr.fixedIps[0]!.ip };
  };
  const fip = topo.floatingIps[0];
  if (!fip) throw new Error('the topology has no floating IP');
  const fipVm = fip.vm;
  const fg = topo.fipGateways.get(fipVm.node);
  if (!fg) throw new Error(`node ${fipVm.node} has no fip gateway port`);
  const qg = router.gateway;
  const qgIp = qg.fixedIps[0]!.ip;
  const extGw = qg.network.subnets.find((s) => s.family === 4)?.gatewayIp ?? '172.24.4.1';

  const [t2, t4, t5] = [vm('test02'), vm('test04'), vm('test05')];
  const [ip2, ip4, ip5] = [ipv4Of(t2), ipv4Of(t4), ipv4Of(t5)];
  const [gw2, gw4, gw5] = [gwOf(t2), gwOf(t4), gwOf(t5)];
  const m = (v: Vm) => v.port.mac;
  const snatNode = router.snatNode ?? 'node1';

  return [
    {
      id: '5.1',
      title: `${t2.name} ${ip2} -> ${t5.name} ${ip5} (same subnet, across nodes)`,
      packets: [
        {
          label: `ARP who-has ${ip5} tell ${ip2}`,
          port: t2.name,
          to: t2.name,
          frame: arpRequest(m(t2), ip2, ip5),
        },
        {
          label: `ICMP echo request ${ip2} -> ${ip5}`,
          port: t2.name,
          to: t5.name,
          frame: ping({ src: m(t2), dst: m(t5) }, ip2, ip5, false, 0x51),
        },
        {
          label: `ARP who-has ${ip2} tell ${ip5}`,
          port: t5.name,
          to: t5.name,
          frame: arpRequest(m(t5), ip5, ip2),
        },
        {
          label: `ICMP echo reply ${ip5} -> ${ip2}`,
          port: t5.name,
          to: t2.name,
          frame: ping({ src: m(t5), dst: m(t2) }, ip5, ip2, true, 0x51),
        },
      ],
    },
    {
      id: '5.2',
      title: `${t2.name} ${ip2} -> ${t4.name} ${ip4} (different subnets, across nodes)`,
      packets: [
        {
          label: `ARP who-has ${gw2.ip} tell ${ip2}`,
          port: t2.name,
          to: t2.name,
          frame: arpRequest(m(t2), ip2, gw2.ip),
        },
        {
          label: `ICMP echo request ${ip2} -> ${ip4}`,
          port: t2.name,
          to: t4.name,
          frame: ping({ src: m(t2), dst: gw2.mac }, ip2, ip4, false, 0x52),
        },
        {
          label: `ARP who-has ${gw4.ip} tell ${ip4}`,
          port: t4.name,
          to: t4.name,
          frame: arpRequest(m(t4), ip4, gw4.ip),
        },
        {
          label: `ICMP echo reply ${ip4} -> ${ip2}`,
          port: t4.name,
          to: t2.name,
          frame: ping({ src: m(t4), dst: gw4.mac }, ip4, ip2, true, 0x52),
        },
      ],
    },
    {
      id: '5.3',
      title: `${t5.name} ${ip5} -> ${INTERNET_HOST} (SNAT without a floating IP, through ${snatNode}'s snat namespace)`,
      packets: [
        {
          label: `ARP who-has ${qgIp} tell ${extGw} (external gateway)`,
          port: `${snatNode}/uplink`,
          to: `${snatNode}/uplink`,
          frame: arpRequest(EXTERNAL_GW_MAC, extGw, qgIp),
        },
        {
          label: `ARP who-has ${gw5.ip} tell ${ip5}`,
          port: t5.name,
          to: t5.name,
          frame: arpRequest(m(t5), ip5, gw5.ip),
        },
        {
          label: `UDP ${ip5}:40053 -> ${INTERNET_HOST}:53`,
          port: t5.name,
          to: `${snatNode}/uplink`,
          frame: dns({ src: m(t5), dst: gw5.mac }, ip5, INTERNET_HOST, 40053, 53),
        },
        {
          label: `UDP ${INTERNET_HOST}:53 -> ${qgIp}:40053 (the answer)`,
          port: `${snatNode}/uplink`,
          to: t5.name,
          frame: dns({ src: EXTERNAL_GW_MAC, dst: qg.mac }, INTERNET_HOST, qgIp, 53, 40053),
        },
      ],
    },
    {
      id: '5.4',
      title: `floating IP ${fip.ip} of ${fipVm.name} ${fip.fixedIp} (${fipVm.node}, both directions)`,
      packets: [
        {
          label: `ARP who-has ${fip.ip} tell ${extGw} (external gateway)`,
          port: `${fipVm.node}/uplink`,
          to: `${fipVm.node}/uplink`,
          frame: arpRequest(EXTERNAL_GW_MAC, extGw, fip.ip),
        },
        {
          label: `ICMP echo request ${INTERNET_HOST} -> ${fip.ip} (inbound)`,
          port: `${fipVm.node}/uplink`,
          to: fipVm.name,
          frame: ping({ src: EXTERNAL_GW_MAC, dst: fg.mac }, INTERNET_HOST, fip.ip, false, 0x54),
        },
        {
          label: `ICMP echo reply ${fip.fixedIp} -> ${INTERNET_HOST}`,
          port: fipVm.name,
          to: `${fipVm.node}/uplink`,
          frame: ping(
            { src: m(fipVm), dst: gwOf(fipVm).mac },
            fip.fixedIp,
            INTERNET_HOST,
            true,
            0x54,
          ),
        },
        {
          label: `UDP ${fip.fixedIp}:33333 -> ${INTERNET_HOST}:53 (outbound)`,
          port: fipVm.name,
          to: `${fipVm.node}/uplink`,
          frame: dns(
            { src: m(fipVm), dst: gwOf(fipVm).mac },
            fip.fixedIp,
            INTERNET_HOST,
            33333,
            53,
          ),
        },
        {
          label: `UDP ${INTERNET_HOST}:53 -> ${fip.ip}:33333 (the answer)`,
          port: `${fipVm.node}/uplink`,
          to: fipVm.name,
          frame: dns({ src: EXTERNAL_GW_MAC, dst: fg.mac }, INTERNET_HOST, fip.ip, 53, 33333),
        },
      ],
    },
  ];
}
