/**
 * Unit tests of the differential runner's comparison and of the packet builders. They
 * need no Open vSwitch: they check that a difference is found, located and shown, and
 * that only the VXLAN fields that may legitimately differ are ignored.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  inetChecksum,
  ip6,
  readPcap,
  tcpFrame,
  udpFrame,
  verifyChecksums,
  vxlanFrame,
  writePcap,
  TCP_SYN,
} from './oracle/packets.js';
import { compareOutputs, describe, hexDiff, normaliseVxlan } from './oracle/run.js';
import type { OracleScenario } from './oracle/scenario.js';

const inner = udpFrame(
  { src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' },
  { src: '10.0.0.1', dst: '10.0.0.2' },
  { sport: 1, dport: 2, payload: Buffer.from('hi') },
);

function vx(sport: number, id: number): Buffer {
  const f = vxlanFrame(
    {
      outerSrcMac: 'aa:55:aa:55:00:12',
      outerDstMac: 'aa:bb:cc:00:00:13',
      outerSrc: '192.168.1.12',
      outerDst: '192.168.1.13',
      sport,
      vni: 0x42,
      udpChecksum: true,
    },
    inner,
  );
  f.writeUInt16BE(id, 18);
  return f;
}

const fake: OracleScenario = {
  name: 'unit',
  summary: 'unit',
  config: () => '',
  inputs: () => [],
  expect: { ports: {} },
};

test('builders give valid checksums', () => {
  const t = tcpFrame(
    { src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' },
    { src: '10.0.0.1', dst: '10.0.0.2' },
    { sport: 1, dport: 80, flags: TCP_SYN, seq: 5 },
  );
  for (const f of [inner, t]) {
    const r = verifyChecksums(f);
    assert.equal(r.ipHeader, true);
    assert.equal(r.l4, true);
  }
  // RFC 1071 example: the sum of these words is 0xddf2, so the checksum is 0x220d.
  assert.equal(inetChecksum(Buffer.from('0001f203f4f5f6f7', 'hex')), 0x220d);
  assert.equal(ip6('fd00::1').toString('hex'), 'fd000000000000000000000000000001');
  assert.equal(ip6('1:2:3:4:5:6:7:8').readUInt16BE(14), 8);
  assert.throws(() => ip6('1::2::3'));
});

test('pcap round trip keeps bytes and timestamps', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dvrlab-pcap-'));
  try {
    const path = join(dir, 'x.pcap');
    writePcap(path, [
      { tsUsec: 1_700_000_000_000_001n, data: inner },
      { tsUsec: 5n, data: Buffer.alloc(3) },
    ]);
    const back = readPcap(path);
    assert.equal(back.length, 2);
    assert.equal(back[0]?.tsUsec, 1_700_000_000_000_001n);
    assert.ok(back[0]?.data.equals(inner));
    assert.equal(back[1]?.data.length, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('VXLAN normalisation ignores sport, IP id and checksums only', () => {
  const ports = new Set([4789]);
  const a = vx(40000, 0);
  const b = vx(50000, 77);
  assert.ok(!a.equals(b));
  assert.ok(normaliseVxlan(a, ports).equals(normaliseVxlan(b, ports)));
  compareOutputs(fake, ports, { eth0: [a] }, { eth0: [b] });
  // A different VNI is still a difference.
  const c = vx(40000, 0);
  c[48] ^= 1;
  assert.throws(
    () => compareOutputs(fake, ports, { eth0: [a] }, { eth0: [c] }),
    /frame 0 differs/,
  );
  // A non-VXLAN UDP frame is compared whole.
  assert.ok(normaliseVxlan(inner, ports).equals(inner));
});

test('a difference names the port, the frame and shows both in hex', () => {
  const b = Buffer.from(inner);
  b[22] = 63; // TTL
  let msg = '';
  try {
    compareOutputs(fake, new Set([4789]), { p2: [inner, inner] }, { p2: [inner, b] });
  } catch (e) {
    msg = (e as Error).message;
  }
  assert.match(msg, /port p2, frame 1 differs/);
  assert.match(msg, /0010 {2}ovs/);
  assert.match(msg, /\^\^/);
  assert.match(msg, /ttl=64/);
  assert.match(msg, /ttl=63/);
  assert.throws(
    () => compareOutputs(fake, new Set(), { p2: [inner] }, { p3: [inner] }),
    /ports that emitted differ/,
  );
  assert.throws(
    () => compareOutputs(fake, new Set(), { p2: [inner] }, { p2: [inner, inner] }),
    /frame 1 is only in dvrlab/,
  );
  assert.match(describe(Buffer.alloc(10)), /runt/);
  assert.equal(hexDiff(inner, inner).split('\n').length, 2);
});
