/**
 * Conntrack: ct(table,zone), ct(commit,zone,exec(set_field->ct_mark)), ct_state
 * +trk+new / +trk+est / +trk+inv / +rpl / +dnat, ct_zone and ct_mark matches, a full
 * TCP handshake, data and teardown through conntrack, a server-initiated SYN (new in
 * the wrong direction), a bare ACK with no connection, SYN+FIN and flagless segments,
 * and UDP DNAT with
 * ct(commit,nat(dst=IP:PORT)) and its reverse through ct(nat).
 *
 * Every frame is its own input, alternating ports, so both tools see the exchange in
 * the order a real conversation has.
 */
import assert from 'node:assert/strict';
import {
  tcpFrame,
  udpFrame,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_SYN,
  verifyChecksums,
} from '../../packets.js';
import type { InputSpec, OracleScenario } from '../../scenario.js';
import { assertMarkers, configOf } from '../common.js';

const C = { mac: '52:54:00:00:00:01', ip: '10.0.0.1', port: 40000 };
const S = { mac: '52:54:00:00:00:02', ip: '10.0.0.2', port: 80 };

function c2s(flags: number, seq: number, ack: number, data = '', sport = C.port): Buffer {
  return tcpFrame(
    { src: C.mac, dst: S.mac },
    { src: C.ip, dst: S.ip },
    {
      sport,
      dport: S.port,
      seq,
      ack,
      flags,
      payload: Buffer.from(data),
    },
  );
}

function s2c(flags: number, seq: number, ack: number, data = '', dport = C.port): Buffer {
  return tcpFrame(
    { src: S.mac, dst: C.mac },
    { src: S.ip, dst: C.ip },
    {
      sport: S.port,
      dport,
      seq,
      ack,
      flags,
      payload: Buffer.from(data),
    },
  );
}

const one = (port: string, f: Buffer): InputSpec => ({ port, frames: [f] });

export const scenario: OracleScenario = {
  name: 'ct-tcp',
  summary:
    'TCP handshake/data/FIN through ct zone 5, ct_mark via exec, +new/+est/+inv/+rpl, UDP DNAT ' +
    'and un-DNAT',
  config: configOf('ct-tcp'),
  inputs: () => [
    one('p1', c2s(TCP_SYN, 1000, 0)),
    one('p2', s2c(TCP_SYN | TCP_ACK, 5000, 1001)),
    one('p1', c2s(TCP_ACK, 1001, 5001)),
    one('p1', c2s(TCP_PSH | TCP_ACK, 1001, 5001, 'hello')),
    one('p2', s2c(TCP_PSH | TCP_ACK, 5001, 1006, 'world')),
    one('p1', c2s(TCP_FIN | TCP_ACK, 1006, 5006)),
    one('p2', s2c(TCP_FIN | TCP_ACK, 5006, 1007)),
    one('p1', c2s(TCP_ACK, 1007, 5007)),
    // The server opens a connection: +trk+new from p2 -> M12 on p3.
    one('p2', s2c(TCP_SYN, 9000, 0, '', 40100)),
    // A bare ACK for a connection conntrack never saw: userspace conntrack picks it up
    // as +new (and the commit creates an entry in SYN_SENT) -> p2.
    one('p1', c2s(TCP_ACK, 77777, 88888, '', 40200)),
    // SYN+FIN and a segment with no flags at all: +trk+inv -> M1e on p3.
    one('p1', c2s(TCP_SYN | TCP_FIN, 4000, 0, '', 40300)),
    one('p1', c2s(0, 4000, 0, '', 40301)),
    // UDP to the virtual address, DNATed to 10.0.0.2:8080, and the reply.
    one(
      'p1',
      udpFrame(
        { src: C.mac, dst: S.mac },
        { src: C.ip, dst: '172.16.0.100' },
        { sport: 5555, dport: 80, payload: Buffer.from('dnat-request') },
      ),
    ),
    one(
      'p2',
      udpFrame(
        { src: S.mac, dst: C.mac },
        { src: S.ip, dst: C.ip },
        { sport: 8080, dport: 5555, payload: Buffer.from('dnat-reply') },
      ),
    ),
  ],
  expect: { ports: { p1: 4, p2: 7, p3: 3 } },
  check: (out, inputs) => {
    // Tracked TCP passes unchanged.
    assert.ok(out.p2?.[0]?.equals(inputs[0]?.[0] as Buffer), 'SYN unchanged');
    assert.ok(out.p1?.[0]?.equals(inputs[1]?.[0] as Buffer), 'SYN-ACK unchanged');
    assertMarkers(out, 'p3', [0x12, 0x1e, 0x1e]); // server SYN; SYN+FIN, no flags: +inv
    const dnat = out.p2?.[6] as Buffer;
    assert.equal(dnat.subarray(30, 34).join('.'), '10.0.0.2', 'DNAT address');
    assert.equal(dnat.readUInt16BE(36), 8080, 'DNAT port');
    const back = out.p1?.[3] as Buffer;
    assert.equal(back.subarray(26, 30).join('.'), '172.16.0.100', 'un-DNAT address');
    assert.equal(back.readUInt16BE(34), 80, 'un-DNAT port');
    for (const f of [dnat, back]) {
      const r = verifyChecksums(f);
      assert.ok(r.ipHeader === true && r.l4 === true, 'NAT keeps checksums valid');
    }
  },
};
