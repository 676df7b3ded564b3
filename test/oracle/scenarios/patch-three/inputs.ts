/**
 * Patch ports across three bridges: a frame crosses br-a -> br-b -> br-c with a MAC
 * rewrite and a dec_ttl on the way; registers and metadata set in br-a are zero in
 * br-b (the flows that would see them never match); the reverse path fans out in
 * br-b; FLOOD in br-b goes out of both patch ports and its LOCAL port; LOCAL of br-c.
 */
import assert from 'node:assert/strict';
import { udpFrame } from '../../packets.js';
import type { OracleScenario } from '../../scenario.js';
import { configOf } from '../common.js';

function udp(src: string, dst: string, n: number): Buffer {
  return udpFrame(
    { src, dst },
    { src: '10.0.0.1', dst: '10.0.0.2', id: n },
    {
      sport: 1000 + n,
      dport: 2000,
      payload: Buffer.from(`patch-${n}`),
    },
  );
}

export const scenario: OracleScenario = {
  name: 'patch-three',
  summary:
    'patch ports across three bridges; regs/metadata cleared at a patch; FLOOD over patches and ' +
    'to LOCAL; LOCAL',
  config: configOf('patch-three'),
  inputs: () => [
    { port: 'pa1', frames: [udp('02:00:00:00:00:a1', '02:00:00:00:00:c1', 1)] },
    { port: 'pc1', frames: [udp('02:00:00:00:00:c1', '02:00:00:00:00:a1', 2)] },
    { port: 'pb1', frames: [udp('02:00:00:00:00:b1', 'ff:ff:ff:ff:ff:ff', 3)] },
  ],
  expect: { ports: { pa1: 2, pb1: 1, pc1: 2, 'br-b': 1, 'br-c': 2 } },
  check: (out, inputs) => {
    const f = out.pc1?.[0] as Buffer;
    assert.equal(f.subarray(6, 12).toString('hex'), '02aa00000001', 'src rewritten in br-a');
    assert.equal(f[22], 63, 'dec_ttl in br-b');
    assert.ok(out['br-c']?.[0]?.equals(f), 'LOCAL of br-c gets the same frame');
    assert.ok(out.pa1?.[0]?.equals(inputs[1]?.[0] as Buffer), 'reverse path unchanged');
    assert.ok(out.pb1?.[0]?.equals(inputs[1]?.[0] as Buffer), 'reverse fan-out to pb1');
    assert.ok(out.pa1?.[1]?.equals(inputs[2]?.[0] as Buffer), 'FLOOD reaches br-a');
    assert.ok(out.pc1?.[1]?.equals(inputs[2]?.[0] as Buffer), 'FLOOD reaches br-c');
  },
};
