/**
 * Pipeline state and control flow: reg0..reg7 (load into subfields, set_field, move,
 * exact and masked matches), metadata (set_field, exact and masked match), goto_table,
 * resubmit(,N) nested two deep with state flowing back, resubmit:PORT and
 * resubmit(PORT,N) (the other in_port is used for the lookup only: the actions run
 * with the real in_port, so output to it is skipped and IN_PORT goes back to it),
 * output:NXM_NX_REG2[0..15], move to swap MACs through
 * registers, load/move into packet fields, and a resubmit loop.
 */
import assert from 'node:assert/strict';
import { ETH_ARP, arp, eth, udpFrame } from '../../packets.js';
import type { OracleScenario } from '../../scenario.js';
import { assertMarkers, configOf } from '../common.js';

function udp(src: string, dst: string, n: number): Buffer {
  return udpFrame(
    { src, dst },
    { src: '10.0.0.1', dst: '10.0.0.2', id: n },
    {
      sport: 1000 + n,
      dport: 2000,
      payload: Buffer.from(`regs-${n}`),
    },
  );
}

export const scenario: OracleScenario = {
  name: 'regs-resubmit',
  summary:
    'reg0..reg7, metadata, load/move/set_field (subfields, into packet fields), goto_table, ' +
    'resubmit forms, nesting, loop',
  config: configOf('regs-resubmit'),
  inputs: () => [
    {
      port: 'p1',
      frames: [
        udp('02:33:00:00:00:01', '02:00:00:00:00:02', 1), // full path -> p2, rewritten
        udp('04:44:00:00:00:01', '02:00:00:00:00:02', 2), // reg3 miss -> M2f on p2
        eth(
          { src: '02:33:00:00:00:01', dst: 'ff:ff:ff:ff:ff:ff', type: ETH_ARP },
          arp({
            op: 1,
            sha: '02:33:00:00:00:01',
            spa: '10.0.0.1',
            tha: '00:00:00:00:00:00',
            tpa: '10.0.0.2',
          }),
        ), // not udp -> M2f
      ],
    },
    { port: 'p2', frames: [udp('02:00:00:00:00:22', '02:00:00:00:00:99', 4)] }, // -> p3
    {
      port: 'p3',
      frames: [
        udp('02:00:00:00:00:33', '02:00:00:00:00:03', 5), // resubmit:4 -> M44 on p2
        // resubmit(4,7) -> M77 on p3 (IN_PORT) only
        udp('02:00:00:00:00:33', '02:00:00:00:00:04', 6),
        udp('02:00:00:00:00:33', '02:00:00:00:00:05', 7), // output:reg -> p2
        udp('02:00:00:00:00:33', '02:00:00:00:00:06', 8), // resubmit loop
      ],
    },
  ],
  expect: { ports: { p2: 5, p3: 2 } },
  notes: [
    'the resubmit loop: translation fails ("over max translation depth") and the whole frame is ' +
      'dropped, the output:2 before the loop included',
  ],
  check: (out, inputs) => {
    const f = out.p2?.[0] as Buffer;
    assert.equal(f.subarray(0, 12).toString('hex'), '023300000001020000000002', 'MACs swapped');
    assert.equal(f.subarray(26, 30).join('.'), '192.168.0.1', 'load into ip_src');
    assert.equal(f.readUInt16BE(34), 0x1a2b, 'move reg1[0..15] into udp_src');
    assert.equal(f.readUInt16BE(36), 80, 'load into udp_dst');
    assert.equal(f[15], 8, 'table 21 saw reg4..reg6');
    assertMarkers(out, 'p2', [0x01, 0x2f, 0x2f, 0x44, 0x05]);
    assert.ok(out.p3?.[0]?.equals(inputs[1]?.[0] as Buffer), 'masked metadata -> p3 unchanged');
    assertMarkers(out, 'p3', [0x99, 0x77]);
  },
};
