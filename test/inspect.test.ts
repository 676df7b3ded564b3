/**
 * The inspection commands on the engine: dump-flows (with filters, --no-stats, --json), show
 * (ovs-vsctl and ovs-ofctl layouts) and their errors.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ROOT, sharedDir } from './helpers.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const ADDON = existsSync(path.join(ROOT, 'native', 'index.js'));

function run(args: string[]) {
  return spawnSync('node', [CLI, ...args], { encoding: 'utf8' });
}

describe('inspection commands', { skip: !ADDON && 'the addon is not built' }, () => {
  const snat = path.join(sharedDir(), 'tools', 'ovs-oracle-examples', 'snat-ct', 'scenario.json');

  it('dump-flows prints a table as ovs-ofctl does, filtered', () => {
    const r = run(['dump-flows', snat, 'br-ex', 'table=2', '--no-stats']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.stdout,
      ' table=2, priority=10,ct_state=+est+trk,ip actions=set_field:fa:16:3e:00:00:02->eth_src,' +
        'set_field:52:54:00:00:00:01->eth_dst,output:1\n' +
        ' table=2, priority=0 actions=drop\n',
    );
    const s = run(['dump-flows', snat, 'br-ex']);
    assert.match(
      s.stdout,
      /^ cookie=0x0, duration=0s, table=0, n_packets=0, n_bytes=0, idle_age=0, priority=10,ip,in_port=1 actions=ct\(commit,table=1,zone=1,nat\(src=172\.24\.4\.10\)\)$/m,
    );
    const j = run(['dump-flows', snat, 'br-ex', 'ip,in_port=2', '--json']);
    const flows = JSON.parse(j.stdout) as { table: number; match: string; actions: string }[];
    assert.deepEqual(
      flows.map((f) => `${f.table} ${f.match} ${f.actions}`),
      ['0 ip,in_port=2 ct(table=2,zone=1,nat)'],
    );
  });

  it('show prints bridges and ports as ovs-vsctl show and ovs-ofctl show do', () => {
    const r = run(['show', snat]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^    Bridge br-ex\n        fail_mode: secure\n/m);
    assert.match(r.stdout, /^        Port int0\n            Interface int0$/m);
    const o = run(['show', '--ofctl', 'br-ex', snat]);
    assert.match(o.stdout, /^ 1\(int0\): addr:/m);
    assert.match(o.stdout, /^ LOCAL\(br-ex\): addr:/m);
  });

  it('a bad bridge or filter is one clear line and exit 1', () => {
    const b = run(['dump-flows', snat, 'br-nope']);
    assert.equal(b.status, 1);
    assert.equal(b.stderr, 'dvrlab: no bridge named "br-nope" (bridges: br-ex)\n');
    const f = run(['dump-flows', snat, 'br-ex', 'nw_sorc=1.2.3.4']);
    assert.equal(f.status, 1);
    assert.match(
      f.stderr,
      /^dvrlab: filter: unknown field "nw_sorc" \(column 1\); did you mean "nw_src"\?\n$/,
    );
    const t = run(['trace', snat, 'br-ex', 'in_port=9']);
    assert.equal(t.status, 1);
    assert.equal(t.stderr.trim().split('\n').length, 1);
  });

  it('traces a packet from a capture, and explains the megaflow', () => {
    const ex = path.join(sharedDir(), 'tools', 'ovs-oracle-examples', 'snat-ct');
    // The 4th packet of ext0-in.pcap is the unsolicited reply: no connection, so table 2's
    // catch-all drops it, and ct_state is in the megaflow because table 2 matches on it.
    const r = run([
      'trace',
      '--explain',
      snat,
      'br-ex',
      'in_port=2',
      '--pcap',
      path.join(ex, 'ext0-in.pcap'),
      '--index',
      '4',
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /^Flow: udp,in_port=2,.*nw_src=8\.8\.8\.8,nw_dst=172\.24\.4\.10,.*tp_src=53,tp_dst=4444$/m,
    );
    assert.match(r.stdout, /resume conntrack with ct_state=new\|trk ct_zone=1/);
    assert.match(
      r.stdout,
      /^Megaflow: recirc_id=0x1,ct_state=-est\+trk,eth,ip,in_port=2,nw_frag=no$/m,
    );
    assert.match(
      r.stdout,
      /^  ct_state: bridge\("br-ex"\) table 2 lookup, matched "priority=0"$/m,
    );
    const missing = run([
      'trace',
      snat,
      'br-ex',
      'in_port=2',
      '--pcap',
      path.join(ex, 'ext0-in.pcap'),
      '--index',
      '9',
    ]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /ext0-in\.pcap: has 4 packets, no packet 9/);
  });
});
