/**
 * `dvrlab trace` against real Open vSwitch: for each case, the oracle runs
 * `ovs-appctl ofproto/trace BRIDGE FLOW` on a fresh OVS with the scenario's flows, and dvrlab
 * traces the same flow on a fresh engine. The `Megaflow:` and `Datapath actions:` lines must be
 * equal; the bridge/table/action sections must be equal once cookies are scrubbed. All cases of
 * one scenario go through one oracle run.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ROOT, sharedDir } from './helpers.js';
import { canonicalActions } from './oracle/canonical.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const SCENARIOS = path.join(ROOT, 'test', 'oracle', 'scenarios');

interface Case {
  scenario: string; // path
  bridge: string;
  flow: string;
}

function example(name: string): string {
  return path.join(sharedDir(), 'tools', 'ovs-oracle-examples', name, 'scenario.json');
}

function ours(name: string): string {
  return path.join(SCENARIOS, name, 'scenario.json');
}

const CASES: Case[] = [
  { scenario: example('l2-rewrite'), bridge: 'br0', flow: 'in_port=1,dl_src=52:54:00:00:00:01' },
  {
    scenario: example('vxlan-encap'),
    bridge: 'br-int',
    flow: 'in_port=1,udp,dl_src=52:54:00:00:00:01,dl_dst=52:54:00:00:00:02,nw_src=10.0.0.1,nw_dst=10.0.0.2',
  },
  {
    scenario: example('vxlan-encap'),
    bridge: 'br-phy',
    flow: 'in_port=1,udp,dl_src=aa:bb:cc:00:00:13,dl_dst=aa:55:aa:55:00:12,nw_src=192.168.1.13,nw_dst=192.168.1.12,nw_ttl=64,udp_src=50000,udp_dst=4789',
  },
  {
    scenario: example('snat-ct'),
    bridge: 'br-ex',
    flow: 'in_port=1,udp,dl_src=52:54:00:00:00:01,dl_dst=fa:16:3e:00:00:fe,nw_src=10.0.0.1,nw_dst=8.8.8.8,nw_ttl=64,udp_src=1000,udp_dst=53',
  },
  { scenario: ours('l2-match'), bridge: 'br0', flow: 'in_port=1,dl_dst=01:00:5e:00:00:01' },
  { scenario: ours('l2-match'), bridge: 'br0', flow: 'in_port=2,arp,arp_op=1' },
  {
    scenario: ours('ipv4-match'),
    bridge: 'br0',
    flow: 'in_port=1,tcp,nw_src=10.0.0.1,nw_dst=192.168.1.77,tcp_dst=443',
  },
  {
    scenario: ours('ipv4-match'),
    bridge: 'br0',
    flow: 'in_port=1,udp,nw_src=172.16.5.5,nw_dst=10.1.2.3,udp_src=53,udp_dst=5353',
  },
  {
    scenario: ours('regs-resubmit'),
    bridge: 'br0',
    flow: 'in_port=1,udp,dl_src=02:00:00:00:00:01,nw_src=10.0.0.1,nw_dst=10.0.0.2,udp_dst=53',
  },
  {
    scenario: ours('normal-vlan'),
    bridge: 'br0',
    flow: 'in_port=1,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff',
  },
  { scenario: ours('vlan-ops'), bridge: 'br0', flow: 'in_port=1,dl_vlan=10,udp' },
  {
    scenario: ours('patch-three'),
    bridge: 'br-a',
    flow: 'in_port=1,udp,nw_ttl=64,nw_dst=10.0.0.2',
  },
];

/** The OVS side: one oracle run per scenario, every case traced in it. */
function oracleTraces(scenario: string, cases: Case[]): string[] {
  const oracle = path.join(sharedDir(), 'tools', 'ovs-oracle');
  assert.ok(existsSync(oracle), `the OVS oracle is missing at ${oracle}`);
  const script = cases
    .map((c) => `ovs-appctl ofproto/trace --names ${c.bridge} '${c.flow}'`)
    .join('; echo @@@@; ');
  const r = spawnSync(oracle, ['exec', '--config', scenario, '--', 'sh', '-c', script], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.status, 0, `oracle failed: ${r.stderr}`);
  return r.stdout.split('@@@@\n');
}

function dvrlabTrace(c: Case): string {
  const r = spawnSync('node', [CLI, 'trace', '--names', c.scenario, c.bridge, c.flow], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `dvrlab trace failed: ${r.stderr}`);
  return r.stdout;
}

function line(text: string, prefix: string): string | undefined {
  return text.split('\n').find((l) => l.startsWith(prefix));
}

/** A `Datapath actions:` line in canonical form (see oracle/canonical.ts). */
function canonicalLine(text: string, trace: string): string | undefined {
  const l = line(text, 'Datapath actions:');
  if (l === undefined) return undefined;
  const flow = line(trace, 'Flow:') ?? '';
  const vid = /dl_vlan=(\d+)/.exec(flow)?.[1];
  const pcp = /dl_vlan_pcp=(\d+)/.exec(flow)?.[1] ?? '0';
  return canonicalActions(
    l.replace(/^Datapath actions: /, ''),
    vid === undefined ? undefined : `vid=${vid},pcp=${pcp}`,
  );
}

/** The bridge/table/action section, with cookies scrubbed. */
function sections(text: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith('bridge('));
  const end = lines.findIndex((l) => l.startsWith('Final flow:'));
  return lines
    .slice(start, end)
    .join('\n')
    .replace(/, cookie 0x[0-9a-f]+/g, '')
    .trim();
}

describe('trace against real OVS', () => {
  const byScenario = new Map<string, Case[]>();
  for (const c of CASES) byScenario.set(c.scenario, [...(byScenario.get(c.scenario) ?? []), c]);
  const expected = new Map<Case, string>();
  before(() => {
    for (const [scenario, cases] of byScenario) {
      oracleTraces(scenario, cases).forEach((t, i) => expected.set(cases[i]!, t));
    }
  });
  for (const c of CASES) {
    it(`${path.basename(path.dirname(c.scenario))} ${c.bridge} ${c.flow}`, () => {
      const ovs = expected.get(c)!;
      const got = dvrlabTrace(c);
      const ctx = `\n--- OVS\n${ovs}\n--- dvrlab\n${got}`;
      assert.equal(line(got, 'Flow:'), line(ovs, 'Flow:'), `Flow:${ctx}`);
      assert.equal(line(got, 'Megaflow:'), line(ovs, 'Megaflow:'), `Megaflow:${ctx}`);
      assert.equal(canonicalLine(got, got), canonicalLine(ovs, ovs), `Datapath actions:${ctx}`);
      assert.equal(sections(got), sections(ovs), `bridge sections${ctx}`);
    });
  }
});
