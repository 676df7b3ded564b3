/**
 * The end-of-replay summary, in tcpreplay's words and with its decimals, followed by dvrlab's
 * own statistics block and the invariant check.
 *
 * tcpreplay computes its rates with integer arithmetic on microseconds and truncates (it never
 * rounds): seconds get 2 decimals from 1 s up and 6 below; Bps 1 decimal; Mbps 2 decimals, or
 * 3 under 1 Mbps; pps and fps 2 decimals. The `Flows:` line is left out when no flow was seen.
 * The arithmetic here is done on BigInt so that large byte counts do not lose precision.
 */
import type { StatsJson } from '../native.js';

/** The counters the tcpreplay lines are made of. */
export interface TcpreplayCounters {
  packets: number;
  bytes: number;
  seconds: number;
  flows: number;
  flowPackets: number;
  nonFlowPackets: number;
}

const MILLION = 1_000_000n;

function pad(n: bigint, width: number): string {
  return n.toString().padStart(width, '0');
}

function big(n: number): bigint {
  return BigInt(Math.max(0, Math.trunc(n)));
}

/** The `Actual:`, `Rated:` and (when flows were seen) `Flows:` lines, without newlines. */
export function formatTcpreplayLines(c: TcpreplayCounters): string[] {
  const diffUs = big(Math.round(c.seconds * 1e6));
  const pkts = big(c.packets);
  const bytes = big(c.bytes);

  let bytesSec = 0n;
  let bytesSec10ths = 0n;
  let mbSec = 0n;
  let mbSec100ths = 0n;
  let mbSec1000ths = 0n;
  let pktsSec = 0n;
  let pktsSec100ths = 0n;
  if (diffUs > 0n && pkts > 0n && bytes > 0n) {
    let bytesSecX10: bigint;
    let pktsSecX100: bigint;
    // tcpreplay switches to millisecond resolution for long, large runs to avoid overflow;
    // the truncation that causes is visible in the last digit, so it is kept.
    if (bytes > 1_000_000_000n && diffUs > MILLION) {
      bytesSecX10 = (bytes * 10n * 1000n) / (diffUs / 1000n);
      pktsSecX100 = (pkts * 100n * 1000n) / (diffUs / 1000n);
    } else {
      bytesSecX10 = (bytes * 10n * MILLION) / diffUs;
      pktsSecX100 = (pkts * 100n * MILLION) / diffUs;
    }
    bytesSec = bytesSecX10 / 10n;
    bytesSec10ths = bytesSecX10 % 10n;
    const mbSecX1000 = (bytesSec * 8n) / 1000n;
    mbSec = mbSecX1000 / 1000n;
    mbSec100ths = (mbSecX1000 / 10n) % 100n;
    mbSec1000ths = mbSecX1000 % 1000n;
    pktsSec = pktsSecX100 / 100n;
    pktsSec100ths = pktsSecX100 % 100n;
  }

  const sec = diffUs / MILLION;
  const usec = diffUs % MILLION;
  const seconds =
    diffUs >= MILLION ? `${sec}.${pad(usec / 10_000n, 2)}` : `${sec}.${pad(usec, 6)}`;
  const mbps =
    mbSec >= 1n ? `${mbSec}.${pad(mbSec100ths, 2)}` : `${mbSec}.${pad(mbSec1000ths, 3)}`;
  const lines = [
    `Actual: ${pkts} packets (${bytes} bytes) sent in ${seconds} seconds`,
    `Rated: ${bytesSec}.${bytesSec10ths} Bps, ${mbps} Mbps, ` +
      `${pktsSec}.${pad(pktsSec100ths, 2)} pps`,
  ];

  const flows = big(c.flows);
  if (flows > 0n) {
    const fpsX100 = diffUs > 0n ? (flows * 100n * MILLION) / diffUs : 0n;
    lines.push(
      `Flows: ${flows} flows, ${fpsX100 / 100n}.${pad(fpsX100 % 100n, 2)} fps, ` +
        `${big(c.flowPackets)} unique flow packets, ` +
        `${big(c.nonFlowPackets)} unique non-flow packets`,
    );
  }
  return lines;
}

/** The result of checking the replay invariant on a stats document. */
export interface InvariantCheck {
  ok: boolean;
  delivered: number; // input packets emitted on at least one port
  dropped: number; // input packets counted in a drop reason
  queued: number; // input packets still waiting for a neighbour
  problems: string[];
}

/**
 * Checks that every input packet was emitted, is still queued, or was counted in exactly one
 * drop reason. With the counters available: drops cannot exceed inputs; each delivered packet
 * leaves as at least one frame, and no frame but generated ones (ARP requests, ICMP errors)
 * leaves when nothing was delivered; the per-input counts add up to `packets_in` (once, or
 * once per loop).
 */
export function checkInvariant(stats: StatsJson, loop = 1): InvariantCheck {
  const problems: string[] = [];
  const counters: [string, number][] = [
    ['packets_in', stats.packets_in],
    ['packets_out', stats.packets_out],
    ...Object.entries(stats.dropped ?? {}).map(([r, n]): [string, number] => [`dropped.${r}`, n]),
  ];
  for (const [name, n] of counters) {
    if (!Number.isSafeInteger(n) || n < 0) problems.push(`${name} is ${n}, not a count`);
  }
  const dropped = Object.values(stats.dropped ?? {}).reduce((a, b) => a + b, 0);
  const queued = stats.queued ?? 0;
  const generated = stats.generated ?? 0;
  const delivered = stats.packets_in - dropped - queued;
  const forwarded = stats.packets_out - generated - (stats.carried ?? 0);
  const lost = queued > 0 ? `${dropped} dropped + ${queued} queued` : `${dropped} dropped`;
  if (delivered < 0) problems.push(`${lost} > ${stats.packets_in} in`);
  if (forwarded < 0) problems.push(`${generated} generated > ${stats.packets_out} frames out`);
  const out =
    generated + (stats.carried ?? 0) > 0
      ? `${forwarded} frames forwarded`
      : `${forwarded} frames out`;
  if (delivered > forwarded) problems.push(`${delivered} delivered > ${out}`);
  if (delivered === 0 && forwarded > 0) problems.push(`${out} but no packet delivered`);
  // With --map, the inputs' records are the mapped packets (packets_in) and the skipped ones.
  const map = stats.map;
  if (map) {
    const skipped = Object.values(map.skipped).reduce((a, b) => a + b, 0);
    if (map.mapped + skipped !== map.records) {
      problems.push(`map: ${map.mapped} mapped + ${skipped} skipped != ${map.records} records`);
    }
    if (map.mapped !== stats.packets_in) {
      problems.push(`map: ${map.mapped} mapped, packets_in is ${stats.packets_in}`);
    }
  }
  const inputPackets = map ? map.records : stats.packets_in;
  if (Array.isArray(stats.inputs) && stats.inputs.length > 0) {
    const read = stats.inputs.reduce((a, i) => a + i.packets, 0);
    if (read !== inputPackets && read * loop !== inputPackets) {
      const what = map ? 'map.records' : 'packets_in';
      problems.push(`inputs add up to ${read} packets, ${what} is ${inputPackets}`);
    }
  }
  return {
    ok: problems.length === 0,
    delivered: Math.max(0, delivered),
    dropped,
    queued,
    problems,
  };
}

/** tcpreplay's `sendpacket_getstat` aligns values after a 27-column label. */
function statLine(label: string, value: string | number, indent = ''): string {
  const text = `${indent}${label}:`;
  return `\t${text.padEnd(27)}${text.length >= 27 ? ' ' : ''}${value}`;
}

/** The whole summary printed after a replay, one string per line. */
export function formatReplaySummary(stats: StatsJson, loop = 1): string[] {
  const lines = formatTcpreplayLines({
    packets: stats.packets_in,
    bytes: stats.bytes_in,
    seconds: stats.seconds,
    flows: stats.flows,
    flowPackets: stats.unique_flow_packets,
    nonFlowPackets: stats.non_flow_packets,
  });
  const check = checkInvariant(stats, loop);
  lines.push('Statistics for dvrlab replay:');
  const map = stats.map;
  if (map) {
    // Nothing is lost silently: records = mapped + skipped, by reason.
    const skipped = Object.entries(map.skipped)
      .filter(([, n]) => n > 0)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const vms = Object.values(map.host_table.vm).filter((n) => n > 0).length;
    lines.push(statLine('Capture records', map.records));
    lines.push(statLine('Mapped packets', map.mapped));
    lines.push(
      statLine(
        'Skipped records',
        skipped.reduce((a, [, n]) => a + n, 0),
      ),
    );
    for (const [reason, n] of skipped) lines.push(statLine(reason, n, '    '));
    if (map.checksums_fixed > 0) lines.push(statLine('Checksums fixed', map.checksums_fixed));
    lines.push(
      statLine(
        'Hosts',
        `${map.hosts} (${map.hosts - map.host_table.outside} on ${vms} VMs, ` +
          `${map.host_table.outside} outside; see map.json)`,
      ),
    );
  }
  lines.push(statLine('Successful packets', check.delivered));
  lines.push(statLine('Failed packets', check.dropped));
  const reasons = Object.entries(stats.dropped ?? {})
    .filter(([, n]) => n > 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [reason, n] of reasons) lines.push(statLine(reason, n, '    '));
  if (check.queued > 0) lines.push(statLine('Queued packets', check.queued));
  lines.push(statLine('Frames out', stats.packets_out));
  if ((stats.generated ?? 0) > 0) {
    lines.push(statLine('generated (ARP, ICMP)', stats.generated ?? 0, '    '));
  }
  lines.push(
    statLine(
      'Invariant',
      check.ok
        ? 'ok (every input packet emitted or dropped once)'
        : `VIOLATED: ${check.problems.join('; ')}`,
    ),
  );
  return lines;
}
