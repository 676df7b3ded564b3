/**
 * The tcpreplay-style summary: wording, decimals, truncation, and the invariant check.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkInvariant, formatReplaySummary, formatTcpreplayLines } from '../src/cli/summary.js';
import type { StatsJson } from '../src/native.js';

function stats(over: Partial<StatsJson> = {}): StatsJson {
  return {
    packets_in: 1000,
    packets_out: 1200,
    bytes_in: 98000,
    bytes_out: 120000,
    dropped: {},
    seconds: 0.010203,
    pps: 98010.38,
    emc_hits: 990,
    emc_bypassed: 0,
    megaflow_hits: 0,
    upcalls: 10,
    megaflows: 10,
    per_port: {},
    inputs: [{ port: 'br0/p1', path: 'in.pcap', packets: 1000, bytes: 98000 }],
    flows: 10,
    unique_flow_packets: 1000,
    non_flow_packets: 0,
    ...over,
  };
}

describe('tcpreplay lines', () => {
  it('uses 6 decimals under a second and truncates rates', () => {
    assert.deepEqual(
      formatTcpreplayLines({
        packets: 1000,
        bytes: 98000,
        seconds: 0.010203,
        flows: 10,
        flowPackets: 1000,
        nonFlowPackets: 0,
      }),
      [
        'Actual: 1000 packets (98000 bytes) sent in 0.010203 seconds',
        // 98000 B / 0.010203 s = 9605018.13... Bps -> 76.84 Mbps; 98010.389 pps truncated.
        'Rated: 9605018.1 Bps, 76.84 Mbps, 98010.38 pps',
        'Flows: 10 flows, 980.10 fps, 1000 unique flow packets, 0 unique non-flow packets',
      ],
    );
  });

  it('uses 2 decimals from one second up', () => {
    // A real tcpreplay run: 805995 packets, 364641929 bytes in 1.032749 s.
    const lines = formatTcpreplayLines({
      packets: 805995,
      bytes: 364641929,
      seconds: 1.032749,
      flows: 41747,
      flowPackets: 805296,
      nonFlowPackets: 454,
    });
    assert.equal(lines[0], 'Actual: 805995 packets (364641929 bytes) sent in 1.03 seconds');
    // Above 1e9 bytes tcpreplay divides by milliseconds; here it still divides by µs.
    assert.equal(lines[1], 'Rated: 353078946.5 Bps, 2824.63 Mbps, 780436.48 pps');
    assert.equal(
      lines[2],
      'Flows: 41747 flows, 40423.18 fps, 805296 unique flow packets, 454 unique non-flow packets',
    );
  });

  it('uses 3 Mbps decimals under 1 Mbps', () => {
    // The zeek tutorial's run: 20 packets, 2050 bytes in 6.70 s.
    const lines = formatTcpreplayLines({
      packets: 20,
      bytes: 2050,
      seconds: 6.708,
      flows: 4,
      flowPackets: 20,
      nonFlowPackets: 0,
    });
    assert.deepEqual(lines, [
      'Actual: 20 packets (2050 bytes) sent in 6.70 seconds',
      'Rated: 305.6 Bps, 0.002 Mbps, 2.98 pps',
      'Flows: 4 flows, 0.59 fps, 20 unique flow packets, 0 unique non-flow packets',
    ]);
  });

  it('switches to millisecond division for long, large runs, as tcpreplay does', () => {
    const [, rated] = formatTcpreplayLines({
      packets: 3_000_000,
      bytes: 3_000_000_000,
      seconds: 2.0015,
      flows: 0,
      flowPackets: 0,
      nonFlowPackets: 0,
    });
    // 3e9 * 10 * 1000 / (2001500 / 1000 = 2001) -> 1499250374.8 Bps.
    assert.equal(rated, 'Rated: 1499250374.8 Bps, 11994.00 Mbps, 1499250.37 pps');
  });

  it('leaves out the Flows line when no flow was seen, and survives zero time', () => {
    assert.deepEqual(
      formatTcpreplayLines({
        packets: 0,
        bytes: 0,
        seconds: 0,
        flows: 0,
        flowPackets: 0,
        nonFlowPackets: 0,
      }),
      [
        'Actual: 0 packets (0 bytes) sent in 0.000000 seconds',
        'Rated: 0.0 Bps, 0.000 Mbps, 0.00 pps',
      ],
    );
  });
});

describe('replay summary', () => {
  it('prints the statistics block with one line per drop reason', () => {
    const s = stats({ dropped: { ttl_expired: 4, no_match: 6 }, packets_out: 1100 });
    assert.equal(
      formatReplaySummary(s).join('\n'),
      [
        'Actual: 1000 packets (98000 bytes) sent in 0.010203 seconds',
        'Rated: 9605018.1 Bps, 76.84 Mbps, 98010.38 pps',
        'Flows: 10 flows, 980.10 fps, 1000 unique flow packets, 0 unique non-flow packets',
        'Statistics for dvrlab replay:',
        '\tSuccessful packets:        990',
        '\tFailed packets:            10',
        '\t    no_match:              6',
        '\t    ttl_expired:           4',
        '\tFrames out:                1100',
        '\tInvariant:                 ok (every input packet emitted or dropped once)',
      ].join('\n'),
    );
  });

  it('keeps one space after a drop reason longer than the column', () => {
    const s = stats({ dropped: { a_very_long_drop_reason_name: 1 } });
    assert.ok(formatReplaySummary(s).includes('\t    a_very_long_drop_reason_name: 1'));
  });

  it('shows a violated invariant', () => {
    const s = stats({ dropped: { no_match: 1001 }, packets_out: 0 });
    const lines = formatReplaySummary(s);
    assert.equal(lines.at(-1), '\tInvariant:                 VIOLATED: 1001 dropped > 1000 in');
  });
});

describe('invariant check', () => {
  it('accepts consistent counters, including floods and loops', () => {
    assert.equal(checkInvariant(stats()).ok, true);
    assert.equal(checkInvariant(stats({ packets_in: 2000, packets_out: 2400 }), 2).ok, true);
    const allDropped = stats({ dropped: { no_match: 1000 }, packets_out: 0 });
    assert.deepEqual(checkInvariant(allDropped), {
      ok: true,
      delivered: 0,
      dropped: 1000,
      queued: 0,
      problems: [],
    });
    // Generated frames (ARP requests, ICMP errors) leave although nothing was delivered;
    // packets waiting for a neighbour are neither delivered nor dropped.
    const arp = stats({ dropped: { no_match: 990 }, queued: 10, packets_out: 4, generated: 4 });
    assert.deepEqual(checkInvariant(arp), {
      ok: true,
      delivered: 0,
      dropped: 990,
      queued: 10,
      problems: [],
    });
  });

  it('finds each kind of inconsistency', () => {
    assert.deepEqual(checkInvariant(stats({ packets_out: 999 })).problems, [
      '1000 delivered > 999 frames out',
    ]);
    assert.deepEqual(
      checkInvariant(stats({ dropped: { no_match: 1000 }, packets_out: 3 })).problems,
      ['3 frames out but no packet delivered'],
    );
    assert.deepEqual(checkInvariant(stats({ packets_in: 1001, packets_out: 2000 })).problems, [
      'inputs add up to 1000 packets, packets_in is 1001',
    ]);
    assert.deepEqual(
      checkInvariant(stats({ dropped: { no_match: 1000 }, packets_out: 5, generated: 2 }))
        .problems,
      ['3 frames forwarded but no packet delivered'],
    );
    assert.deepEqual(checkInvariant(stats({ dropped: { x: 999 }, queued: 2 })).problems, [
      '999 dropped + 2 queued > 1000 in',
    ]);
    assert.deepEqual(checkInvariant(stats({ dropped: { bad: -1 } })).problems, [
      'dropped.bad is -1, not a count',
    ]);
  });
});
