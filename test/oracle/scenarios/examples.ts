/**
 * The three shared oracle examples, used in place: their scenario JSON, flows and
 * input captures are read from the shared directory at test time.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Locations, OracleScenario } from '../scenario.js';

const dir = (loc: Locations, name: string): string =>
  join(loc.shared, 'tools', 'ovs-oracle-examples', name);

export const l2Rewrite: OracleScenario = {
  name: 'l2-rewrite',
  summary: 'shared example: in_port=1 -> mod_dl_src, output:2 (10 UDP frames, 3 flows)',
  config: (loc) => join(dir(loc, 'l2-rewrite'), 'scenario.json'),
  inputs: () => [{ port: 'p1', pcap: (l) => join(dir(l, 'l2-rewrite'), 'input.pcap') }],
  expect: { ports: { p2: 10 } },
  check: (out, inputs) => {
    const src = Buffer.from('0200000000aa', 'hex');
    (out.p2 ?? []).forEach((f, i) => {
      const inp = inputs[0]?.[i] as Buffer;
      const want = Buffer.concat([inp.subarray(0, 6), src, inp.subarray(12)]);
      assert.ok(f.equals(want), `p2 frame ${i}: only eth_src may change`);
    });
  },
};

export const vxlanEncap: OracleScenario = {
  name: 'vxlan-encap',
  summary:
    'shared example: br-int -> patch -> br-tun set_field tun_id -> native VXLAN via br-phy; ' +
    'decap back',
  config: (loc) => join(dir(loc, 'vxlan-encap'), 'scenario.json'),
  inputs: () => [
    { port: 'vm1', pcap: (l) => join(dir(l, 'vxlan-encap'), 'vm1-in.pcap') },
    { port: 'eth0', pcap: (l) => join(dir(l, 'vxlan-encap'), 'eth0-in.pcap') },
  ],
  expect: { ports: { eth0: 4, vm1: 4 } },
  notes: ['vxlan0 has options:local_ip, which the oracle strips (native tunnel routing)'],
  check: (out, inputs) => {
    (out.eth0 ?? []).forEach((f, i) => {
      assert.equal(f.subarray(0, 12).toString('hex'), 'aabbcc000013aa55aa550012');
      assert.equal(f.subarray(42, 50).toString('hex'), '0800000000004200', 'VNI 0x42');
      assert.ok(f.subarray(50).equals(inputs[0]?.[i] as Buffer), `eth0 frame ${i}: inner intact`);
    });
    (out.vm1 ?? []).forEach((f, i) => {
      assert.ok(f.equals((inputs[1]?.[i] as Buffer).subarray(50)), `vm1 frame ${i}: decapped`);
    });
  },
};

export const snatCt: OracleScenario = {
  name: 'snat-ct',
  summary:
    'shared example: ct(commit,zone=1,nat(src=...)) SNAT out, ct(nat) un-NAT back, unsolicited ' +
    'dropped',
  config: (loc) => join(dir(loc, 'snat-ct'), 'scenario.json'),
  inputs: () => [
    { port: 'int0', pcap: (l) => join(dir(l, 'snat-ct'), 'int0-in.pcap') },
    { port: 'ext0', pcap: (l) => join(dir(l, 'snat-ct'), 'ext0-in.pcap') },
  ],
  expect: { ports: { ext0: 3, int0: 3 } },
  check: (out) => {
    for (const f of out.ext0 ?? []) assert.equal(f.subarray(26, 30).join('.'), '172.24.4.10');
    for (const f of out.int0 ?? []) assert.equal(f.subarray(30, 34).join('.'), '10.0.0.1');
  },
};
