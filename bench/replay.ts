/**
 * `npm run bench`: a real capture (`captures/ndpi-merged-100k.pcap`, 100 734 frames of mixed
 * sizes) through two scenarios, dvrlab and Open vSwitch 3.1 side by side in the same run:
 *
 * - L2 rewrite: one bridge, `in_port=1,actions=mod_dl_src:…,output:2`;
 * - VXLAN encap: br-int → patch → br-tun (`set_field:0x42->tun_id`, vxlan port) → native
 *   tunnel through the underlay bridge br-phy (NORMAL) → eth0.
 *
 * For dvrlab it measures the datapath with the capture held in memory (after one warm-up
 * pass, several timed passes: packets per second, nanoseconds per packet, cache tiers) and an
 * end-to-end file replay (read the pcap, forward, write the output pcaps). For OVS it runs the
 * oracle on the same scenario file and capture (`--no-capture --perf`) and reports its
 * end-to-end rate and its PMD's datapath-only estimate. The table is printed and written to
 * bench/RESULTS.md.
 *
 * Options (environment): DVRLAB_BENCH_PASSES (timed in-memory passes, default 5),
 * DVRLAB_BENCH_NO_ORACLE=1 (skip OVS), DVRLAB_SHARED (the shared directory).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine, type BenchJson, type StatsJson } from '../src/native.js';
import { loadScenario } from '../src/scenario/load.js';
import { PortIndex } from '../src/scenario/ports.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function sharedDir(): string {
  const candidates = [process.env.DVRLAB_SHARED, path.resolve(ROOT, '..', 'shared'), '/work/shared'];
  for (const c of candidates) {
    if (c && existsSync(path.join(c, 'captures'))) return c;
  }
  throw new Error(`no shared directory with captures/ under ${candidates.filter(Boolean).join(', ')}`);
}

interface Workload {
  name: string;
  input: string; // port name, as the oracle and dvrlab both accept it
  scenario: object;
}

const MTU = 65000; // the capture has GRO/TSO frames up to 37 kB; OVS drops frames over MTU

const WORKLOADS: Workload[] = [
  {
    name: 'L2 rewrite',
    input: 'p1',
    scenario: {
      comment: 'bench: one bridge, rewrite the source MAC of everything from p1 and send it to p2',
      mtu: MTU,
      bridges: [
        {
          name: 'br0',
          ports: [
            { name: 'p1', ofport: 1, type: 'dummy' },
            { name: 'p2', ofport: 2, type: 'dummy' },
          ],
          flows: ['in_port=1,actions=mod_dl_src:02:00:00:00:00:aa,output:2'],
        },
      ],
    },
  },
  {
    name: 'VXLAN encap',
    input: 'vm1',
    scenario: {
      comment: 'bench: br-int -> patch -> br-tun VNI 0x42 -> native tunnel via br-phy -> eth0',
      mtu: MTU,
      bridges: [
        {
          name: 'br-int',
          ports: [
            { name: 'vm1', ofport: 1, type: 'dummy' },
            { name: 'patch-tun', ofport: 2, type: 'patch', options: { peer: 'patch-int' } },
          ],
          flows: ['in_port=1,actions=output:2', 'in_port=2,actions=output:1'],
        },
        {
          name: 'br-tun',
          ports: [
            { name: 'patch-int', ofport: 1, type: 'patch', options: { peer: 'patch-tun' } },
            {
              name: 'vxlan0',
              ofport: 2,
              type: 'vxlan',
              options: { remote_ip: '192.168.1.13', key: 'flow' },
            },
          ],
          flows: ['in_port=1,actions=set_field:0x42->tun_id,output:2', 'in_port=2,tun_id=0x42,actions=output:1'],
        },
        {
          name: 'br-phy',
          mac: 'aa:55:aa:55:00:12',
          ip: '192.168.1.12/24',
          ports: [{ name: 'eth0', ofport: 1, type: 'dummy' }],
          flows: ['actions=NORMAL'],
        },
      ],
      routes: [{ prefix: '192.168.1.0/24', dev: 'br-phy' }],
      neighbors: [{ dev: 'br-phy', ip: '192.168.1.13', mac: 'aa:bb:cc:00:00:13' }],
    },
  },
];

interface OracleResult {
  pps: number;
  datapathPps?: number;
  emcHits: number;
  megaflowHits: number;
  upcalls: number;
  packets: number;
}

function runOracle(shared: string, scenarioFile: string, input: string, capture: string, tmp: string): OracleResult | string {
  const oracle = path.join(shared, 'tools', 'ovs-oracle');
  if (!existsSync(oracle)) return 'the OVS oracle is not available';
  const out = path.join(tmp, 'oracle');
  const r = spawnSync(
    oracle,
    ['run', '--config', scenarioFile, '--in', `${input}=${capture}`, '--out', out, '--no-capture', '--no-hex', '--perf'],
    { encoding: 'utf8', timeout: 600_000 },
  );
  if (r.status !== 0) return `the OVS oracle failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`;
  const s = JSON.parse(readFileSync(path.join(out, 'stats.json'), 'utf8'));
  const pmds = Object.values(s.pmd_stats ?? {}) as Record<string, number>[];
  const sum = (k: string) => pmds.reduce((a, p) => a + (p[k] ?? 0), 0);
  const est = Object.values(s.pmd_estimates ?? {}) as Record<string, number>[];
  const dp = est.map((e) => e.datapath_only_pps_est).find((v) => typeof v === 'number');
  return {
    pps: s.pps,
    datapathPps: dp,
    emcHits: sum('emc_hits'),
    megaflowHits: sum('megaflow_hits'),
    upcalls: sum('miss_with_success_upcall'),
    packets: sum('packets_received'),
  };
}

const fmt = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(0));
const pct = (n: number) => `${(100 * n).toFixed(1)} %`;

async function main(): Promise<void> {
  const shared = sharedDir();
  const capture = path.join(shared, 'captures', 'ndpi-merged-100k.pcap');
  const passes = Number(process.env.DVRLAB_BENCH_PASSES ?? 5) + 1;
  const withOracle = process.env.DVRLAB_BENCH_NO_ORACLE !== '1';
  const rows: string[] = [];
  const notes: string[] = [];
  for (const w of WORKLOADS) {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'dvrlab-bench-'));
    try {
      const file = path.join(tmp, 'scenario.json');
      writeFileSync(file, JSON.stringify(w.scenario, null, 2));
      const loaded = loadScenario(file);
      const index = new PortIndex(loaded.scenario);
      const port = index.resolveInput(w.input).ref;
      process.stderr.write(`${w.name}: dvrlab in memory ...\n`);
      const mem: BenchJson = await new Engine(loaded.scenario).bench({ port, path: capture, passes });
      process.stderr.write(`${w.name}: dvrlab file replay ...\n`);
      const outDir = path.join(tmp, 'out');
      const rep: StatsJson = await new Engine(loaded.scenario).replay({
        inputs: [{ port, path: capture }],
        outputs: index.outputs(outDir),
        loop: 1,
        speed: { mode: 'topspeed', value: 0 },
        nsec: false,
      });
      let ovs: OracleResult | string = 'skipped (DVRLAB_BENCH_NO_ORACLE=1)';
      if (withOracle) {
        process.stderr.write(`${w.name}: Open vSwitch (oracle) ...\n`);
        ovs = runOracle(shared, file, w.input, capture, tmp);
      }
      const o = typeof ovs === 'string' ? undefined : ovs;
      if (typeof ovs === 'string') notes.push(`${w.name}: OVS ${ovs}.`);
      rows.push(
        `| ${w.name} | dvrlab, in memory | ${fmt(mem.pps)} | ${mem.ns_per_packet.toFixed(0)} | ` +
          `${pct(mem.emc_hit_rate)} | ${pct(mem.megaflow_hit_rate)} | ${mem.upcalls} | ${mem.megaflows} |`,
        `| ${w.name} | dvrlab, file replay (read + forward + write pcaps) | ${fmt(rep.pps)} | ` +
          `${(1e9 / rep.pps).toFixed(0)} | ${pct(rep.emc_hits / rep.packets_in)} | ` +
          `${pct(rep.megaflow_hits / rep.packets_in)} | ${rep.upcalls} | ${rep.megaflows} |`,
      );
      if (o) {
        rows.push(
          `| ${w.name} | OVS 3.1 oracle, end to end | ${fmt(o.pps)} | ${(1e9 / o.pps).toFixed(0)} | ` +
            `${pct(o.emcHits / o.packets)} | ${pct(o.megaflowHits / o.packets)} | ${o.upcalls} | – |`,
        );
        if (o.datapathPps) {
          rows.push(
            `| ${w.name} | OVS 3.1 PMD, datapath-only estimate | ${fmt(o.datapathPps)} | ` +
              `${(1e9 / o.datapathPps).toFixed(0)} | | | | |`,
          );
        }
        notes.push(
          `${w.name}: dvrlab in memory is ${(mem.pps / o.pps).toFixed(0)}× the oracle's end-to-end ` +
            `rate; dvrlab's file replay is ${(rep.pps / o.pps).toFixed(1)}× it` +
            (o.datapathPps ? `; in memory is ${(mem.pps / o.datapathPps).toFixed(1)}× OVS's datapath-only estimate.` : '.'),
        );
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const table = [
    '| workload | system | pps | ns/pkt | EMC hits | megaflow hits | upcalls | megaflows |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
  const doc = `<!-- Generated by \`npm run bench\` (bench/replay.ts); rerun it to refresh. -->
# Benchmark results

Capture: \`captures/ndpi-merged-100k.pcap\` (100 734 frames, mixed sizes up to 37 kB; the one
frame shorter than an Ethernet header is counted as a drop by the file replay and left out of
the in-memory passes), on
${os.cpus().length} × ${cpu}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.
dvrlab in memory: the capture held in memory, one warm-up pass, then ${passes - 1} timed passes
on one core (hit rates are over the timed passes). File replay: \`dvrlab replay\` reading the pcap
and writing every output pcap. OVS: the \`ovs-oracle\` (OVS 3.1, userspace datapath, dummy
ports, PMD on its own core) on the same scenario file and capture, \`--no-capture --perf\`;
its end-to-end rate is bound by its injection harness (see tools/OVS-ORACLE.md), the
datapath-only estimate is TSC Hz over the PMD's median cycles per packet.

${table}

${notes.map((n) => `- ${n}`).join('\n')}
`;
  process.stdout.write(`${table}\n\n${notes.join('\n')}\n`);
  // Live throughput is measured by bench/lab-iperf.sh (root), which writes bench/live.md.
  const live = path.join(ROOT, 'bench', 'live.md');
  const liveDoc = existsSync(live) ? `\n${readFileSync(live, 'utf8')}` : '';
  writeFileSync(path.join(ROOT, 'bench', 'RESULTS.md'), doc + liveDoc);
  process.stderr.write('wrote bench/RESULTS.md\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).message}\n`);
  process.exit(1);
});
