/**
 * Scenario loading: both formats, both syntaxes, flows from files, arrays and multi-line
 * strings, and the exact one-line message of every mistake the loader catches.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ScenarioError } from '../src/errors.js';
import { loadScenario, loadScenarioText } from '../src/scenario/load.js';
import { errorOf, ROOT, sharedDir, tempDir } from './helpers.js';

const EXAMPLES = path.join(sharedDir(), 'tools', 'ovs-oracle-examples');

/** A one-node scenario in the oracle's format, as an object to vary in tests. */
function oneNode(): Record<string, any> {
  return {
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
            options: { remote_ip: '192.168.1.13', key: 'flow', dst_port: 4789 },
          },
        ],
        flows: ['in_port=1,actions=set_field:0x42->tun_id,output:2'],
      },
      {
        name: 'br-phy',
        mac: 'AA:55:aa:55:00:12',
        ip: '192.168.1.12/24',
        ports: [{ name: 'eth0', ofport: 1 }],
        flows: ['actions=NORMAL'],
      },
    ],
    routes: [{ prefix: '192.168.1.0/24', dev: 'br-phy' }],
    neighbors: [{ dev: 'br-phy', ip: '192.168.1.13', mac: 'aa:bb:cc:00:00:13' }],
  };
}

/** A two-node raw scenario. */
function multiNode(): Record<string, any> {
  const node = (name: string, ip: string, vm: string) => ({
    name,
    underlay: { ip, mac: `02:00:00:00:00:0${name.slice(-1)}` },
    bridges: [
      {
        name: 'br-int',
        ports: [
          { name: `tap-${vm}`, ofport: 1, vm },
          { name: 'patch-tun', ofport: 2, type: 'patch', peer: 'patch-int' },
        ],
        flows: 'actions=NORMAL\n',
      },
      {
        name: 'br-tun',
        ports: [
          { name: 'patch-int', ofport: 1, type: 'patch', peer: 'patch-tun' },
          { name: 'vxlan-1', ofport: 2, type: 'vxlan', options: { remote_ip: '10.0.0.9' } },
        ],
      },
    ],
  });
  return { nodes: [node('node1', '10.0.0.1', 'test01'), node('node2', '10.0.0.2', 'test02')] };
}

/** Loads `obj` written as pretty JSON named scenario.json; returns the error message. */
function jsonError(obj: unknown): string {
  const err = errorOf(() => loadScenarioText(JSON.stringify(obj, null, 2), 'scenario.json'));
  assert.equal(err.name, 'ScenarioError', err.message);
  return err.message;
}

/** The message without its `:LINE:COLUMN` part, as the path alone identifies the value. */
function withoutPos(message: string): string {
  return message.replace(/^([^:]+):\d+:\d+: /, '$1: ');
}

describe('one-node scenarios (ovs-oracle JSON)', () => {
  it('loads the oracle examples as they are', () => {
    for (const ex of ['l2-rewrite', 'snat-ct', 'vxlan-encap']) {
      const loaded = loadScenario(path.join(EXAMPLES, ex, 'scenario.json'));
      assert.equal(loaded.scenario.oneNode, true);
      assert.equal(loaded.scenario.nodes.length, 1);
      assert.equal(loaded.scenario.nodes[0].name, '');
      assert.deepEqual(loaded.warnings, []);
    }
  });

  it('reads flows from a file relative to the scenario, keeping line numbers', () => {
    const file = path.join(EXAMPLES, 'l2-rewrite', 'scenario.json');
    const [bridge] = loadScenario(file).scenario.nodes[0].bridges;
    assert.equal(bridge.flows.length, 1);
    assert.equal(bridge.flows[0].text, 'in_port=1,actions=mod_dl_src:02:00:00:00:00:aa,output:2');
    assert.equal(bridge.flows[0].line, 2);
    assert.equal(
      path.resolve(bridge.flows[0].source),
      path.join(EXAMPLES, 'l2-rewrite', 'br0.flows'),
    );
  });

  it('normalises ports, bridges, routes and neighbours', () => {
    const s = loadScenarioText(JSON.stringify(oneNode()), 'scenario.json').scenario;
    const [brInt, brTun, brPhy] = s.nodes[0].bridges;
    assert.deepEqual(brInt.ports[0], { name: 'vm1', ofport: 1, type: 'dummy', options: {} });
    assert.deepEqual(brInt.ports[1], {
      name: 'patch-tun',
      ofport: 2,
      type: 'patch',
      peer: 'patch-int',
      options: {},
    });
    assert.deepEqual(brTun.ports[1].options, {
      remote_ip: '192.168.1.13',
      key: 'flow',
      dst_port: '4789',
    });
    assert.equal(brPhy.ports[0].type, 'dummy', 'an untyped one-node port is a dummy port');
    assert.equal(brPhy.mac, 'aa:55:aa:55:00:12');
    assert.equal(brPhy.ip, '192.168.1.12/24');
    assert.equal(brPhy.failMode, 'secure');
    assert.deepEqual(brInt.flows[1], {
      text: 'in_port=2,actions=output:1',
      source: 'scenario.json:bridges[0].flows[1]',
      line: 1,
    });
    assert.deepEqual(s.nodes[0].routes, [{ prefix: '192.168.1.0/24', dev: 'br-phy' }]);
    assert.deepEqual(s.nodes[0].neighbors, [
      { dev: 'br-phy', ip: '192.168.1.13', mac: 'aa:bb:cc:00:00:13' },
    ]);
  });

  it('accepts every oracle key and ignores the ones it does not use', () => {
    const obj = oneNode();
    Object.assign(obj, {
      comment: 'x',
      pmd: false,
      mtu: 9000,
      ovs_other_config: { 'emc-insert-inv-prob': '100' },
      ofctl_args: ['-O', 'OpenFlow13'],
      keep_local_ip: true,
      vsctl: [],
      appctl: [],
    });
    Object.assign(obj.bridges[0], {
      fail_mode: 'standalone',
      protocols: 'OpenFlow13',
      other_config: {},
      set: {},
      groups: [],
      meters: [],
      comment: 'y',
    });
    Object.assign(obj.bridges[0].ports[0], {
      tag: 5,
      mtu: 1500,
      port_set: { vlan_mode: 'access', trunks: '[7, 8]' },
      interface_set: { 'external_ids:iface-id': 'x' },
    });
    obj.routes[0].pkt_mark = null;
    const loaded = loadScenarioText(JSON.stringify(obj), 'scenario.json');
    const node = loaded.scenario.nodes[0];
    assert.equal(node.mtu, 9000);
    assert.equal(node.bridges[0].failMode, 'standalone');
    assert.deepEqual(node.bridges[0].ports[0], {
      name: 'vm1',
      ofport: 1,
      type: 'dummy',
      options: {},
      tag: 5,
      trunks: [7, 8],
      vlanMode: 'access',
      mtu: 1500,
    });
    assert.deepEqual(loaded.warnings, []);
  });

  it('warns about oracle keys that would change behaviour but are ignored', () => {
    const obj = oneNode();
    obj.appctl = [['fdb/flush']];
    obj.bridges[0].set = { mcast_snooping_enable: 'true' };
    const text = JSON.stringify(obj);
    const { warnings } = loadScenarioText(text, 'scenario.json');
    const setAt = text.indexOf('{"mcast_snooping_enable"') + 1;
    const appctlAt = text.indexOf('[["fdb/flush"]]') + 1;
    assert.deepEqual(warnings, [
      `scenario.json:1:${setAt}: bridges[0].set: ignored: dvrlab does not emulate raw Bridge ` +
        'table columns',
      `scenario.json:1:${appctlAt}: appctl: ignored: dvrlab does not run ovs-vsctl/ovs-appctl ` +
        'commands',
    ]);
  });

  it('rejects groups and meters', () => {
    const obj = oneNode();
    obj.bridges[1].groups = ['group_id=1,type=select,bucket=output:1'];
    assert.equal(
      withoutPos(jsonError(obj)),
      'scenario.json: bridges[1].groups: groups are not supported',
    );
    const obj2 = oneNode();
    obj2.bridges[0].meters = ['meter=1 pktps band=type=drop rate=10'];
    assert.equal(
      withoutPos(jsonError(obj2)),
      'scenario.json: bridges[0].meters: meters are not supported',
    );
  });
});

describe('flows', () => {
  it('splits a multi-line string, skipping blank and comment lines but counting them', () => {
    const obj = oneNode();
    obj.bridges[0].flows =
      '# header\n\nin_port=1,actions=output:2  # to the tunnel\n  \nin_port=2,actions=output:1\n';
    const { flows } = loadScenarioText(JSON.stringify(obj), 'sc.json').scenario.nodes[0]
      .bridges[0];
    assert.deepEqual(flows, [
      { text: 'in_port=1,actions=output:2', source: 'sc.json:bridges[0].flows', line: 3 },
      { text: 'in_port=2,actions=output:1', source: 'sc.json:bridges[0].flows', line: 5 },
    ]);
  });

  it('skips blank and comment entries of an array, keeping each entry its index', () => {
    const obj = oneNode();
    obj.bridges[0].flows = ['# first', '', 'actions=drop'];
    const { flows } = loadScenarioText(JSON.stringify(obj), 'sc.json').scenario.nodes[0]
      .bridges[0];
    assert.deepEqual(flows, [
      { text: 'actions=drop', source: 'sc.json:bridges[0].flows[2]', line: 1 },
    ]);
  });

  it('reads a flows file next to the scenario, wherever the scenario is', () => {
    const dir = tempDir({
      'sub/s.json': JSON.stringify({ bridges: [{ name: 'br0', flows: 'br0.flows' }] }),
      'sub/br0.flows': '# comment\r\nactions=NORMAL\r\n',
    });
    const [bridge] = loadScenario(path.join(dir, 'sub', 's.json')).scenario.nodes[0].bridges;
    assert.equal(bridge.flows.length, 1);
    assert.equal(bridge.flows[0].text, 'actions=NORMAL');
    assert.equal(bridge.flows[0].line, 2);
    assert.equal(path.resolve(bridge.flows[0].source), path.join(dir, 'sub', 'br0.flows'));
  });

  it('reports a missing flows file, with a hint when it looks like a flow', () => {
    const obj = { bridges: [{ name: 'br0', flows: 'missing.flows' }] };
    assert.equal(
      jsonError(obj),
      'scenario.json:5:16: bridges[0].flows: cannot read flows file "missing.flows": no such file',
    );
    const inline = { bridges: [{ name: 'br0', flows: 'actions=NORMAL' }] };
    assert.equal(
      withoutPos(jsonError(inline)),
      'scenario.json: bridges[0].flows: cannot read flows file "actions=NORMAL": no such file ' +
        '(to write flows inline, give an array of strings)',
    );
  });

  it('rejects flows of the wrong type', () => {
    const obj = oneNode();
    obj.bridges[0].flows = 5;
    assert.equal(
      withoutPos(jsonError(obj)),
      'scenario.json: bridges[0].flows: expected a flows file name, a multi-line string or an ' +
        'array of flow strings, got 5',
    );
  });
});

describe('multi-node scenarios', () => {
  it('loads a YAML scenario with nodes, underlays, VMs and multi-line flows', () => {
    const yaml = [
      'nodes:',
      '  - name: node1',
      '    underlay: {ip: 192.168.1.11, mac: "02:00:00:00:01:11"}',
      '    bridges:',
      '      - name: br-int',
      '        ports:',
      '          - {name: qvo1, ofport: 1, vm: test01}',
      '          - {name: eth1, ofport: 2, type: uplink}',
      '        flows: |',
      '          # table 0',
      '          priority=0,actions=NORMAL',
      '    namespaces:',
      '      - name: qrouter-1',
      '',
    ].join('\n');
    const loaded = loadScenarioText(yaml, 'cloud.yaml');
    const { scenario } = loaded;
    assert.equal(scenario.oneNode, false);
    const [node] = scenario.nodes;
    assert.equal(node.name, 'node1');
    assert.deepEqual(node.underlay, { ip: '192.168.1.11', mac: '02:00:00:00:01:11' });
    assert.deepEqual(node.bridges[0].ports[0], {
      name: 'qvo1',
      ofport: 1,
      type: 'internal',
      options: {},
      vm: 'test01',
    });
    assert.equal(node.bridges[0].ports[1].type, 'uplink');
    assert.deepEqual(node.bridges[0].flows, [
      {
        text: 'priority=0,actions=NORMAL',
        source: 'cloud.yaml:nodes[0].bridges[0].flows',
        line: 2,
      },
    ]);
    // Namespaces pass through to the engine, which parses and checks them.
    assert.deepEqual(node.namespaces, [{ name: 'qrouter-1' }]);
    assert.deepEqual(loaded.warnings, []);
  });

  it('loads the same scenario from JSON', () => {
    const { scenario, warnings } = loadScenarioText(JSON.stringify(multiNode()), 'c.json');
    assert.equal(scenario.nodes.length, 2);
    assert.equal(scenario.nodes[1].bridges[0].ports[1].peer, 'patch-int');
    assert.deepEqual(warnings, []);
  });

  it('rejects duplicate nodes and VMs, and a VM named like a node', () => {
    const dupNode = multiNode();
    dupNode.nodes[1].name = 'node1';
    assert.equal(
      withoutPos(jsonError(dupNode)),
      'scenario.json: nodes[1].name: duplicate node name "node1" (also nodes[0])',
    );
    const dupVm = multiNode();
    dupVm.nodes[1].bridges[0].ports[0].vm = 'test01';
    assert.equal(
      withoutPos(jsonError(dupVm)),
      'scenario.json: nodes[1].bridges[0].ports[0].vm: VM "test01" already has a port ' +
        '(nodes[0].bridges[0].ports[0])',
    );
    const vmNode = multiNode();
    vmNode.nodes[0].bridges[0].ports[0].vm = 'node2';
    assert.equal(
      withoutPos(jsonError(vmNode)),
      'scenario.json: nodes[0].bridges[0].ports[0].vm: VM name "node2" is also a node name',
    );
  });

  it('rejects a second uplink port on a node', () => {
    const obj = multiNode();
    obj.nodes[0].bridges[0].ports.push({ name: 'eth1', ofport: 3, type: 'uplink' });
    obj.nodes[0].bridges[1].ports.push({ name: 'eth2', ofport: 3, type: 'uplink' });
    assert.equal(
      withoutPos(jsonError(obj)),
      'scenario.json: nodes[0].bridges[1].ports[2].type: a node has at most one uplink port ' +
        '(also nodes[0].bridges[0].ports[2])',
    );
  });

  it('checks underlay addresses', () => {
    const obj = multiNode();
    obj.nodes[1].underlay.mac = '02:00:00:00:00';
    assert.equal(
      withoutPos(jsonError(obj)),
      'scenario.json: nodes[1].underlay.mac: expected a MAC address like aa:bb:cc:dd:ee:ff, ' +
        'got "02:00:00:00:00"',
    );
    const obj2 = multiNode();
    obj2.nodes[0].underlay.ip = '10.0.0.300';
    assert.equal(
      withoutPos(jsonError(obj2)),
      'scenario.json: nodes[0].underlay.ip: expected an IP address like 192.168.1.12 or ' +
        '192.168.1.12/24, got "10.0.0.300"',
    );
  });
});

describe('syntax errors', () => {
  const cases: [string, string, string][] = [
    [
      'trailing comma',
      '{"bridges": [],\n}',
      "s.json:2:1: expected a property name after ',', found '}' " +
        '(trailing commas are not allowed in JSON)',
    ],
    [
      'missing colon',
      '{\n  "bridges" []\n}',
      "s.json:2:13: expected ':' after property name, found '['",
    ],
    [
      'missing comma',
      '{"bridges": [\n  {"name": "a"}\n  {"name": "b"}]}',
      "s.json:3:3: expected ',' or ']' after array element, found '{'",
    ],
    ['unterminated string', '{"bridges": [{"name": "br0}]}', 's.json:1:23: unterminated string'],
    ['end of file', '{"bridges": [', 's.json:1:14: expected a value, found end of file'],
    ['bad word', '{"pmd": tru}', "s.json:1:9: expected a value, found 'tru'"],
    [
      'single quotes',
      "{'bridges': []}",
      "s.json:1:2: expected a property name in double quotes, found '''",
    ],
    [
      'comment',
      '{\n  // br0\n  "bridges": []}',
      's.json:2:3: comments are not allowed in JSON (use a .yaml file for comments)',
    ],
    ['duplicate key', '{"bridges": [],\n "bridges": []}', 's.json:2:2: duplicate key "bridges"'],
    [
      'text after',
      '{"bridges": []} x',
      "s.json:1:17: expected end of file after the JSON value, found 'x'",
    ],
    ['empty', '', 's.json:1:1: expected a value, found end of file'],
  ];
  for (const [what, text, message] of cases) {
    it(`JSON: ${what}`, () => {
      const err = errorOf(() => loadScenarioText(text, 's.json'));
      assert.equal(err.message, message);
      assert.equal(err.code, 'E_SCENARIO');
    });
  }

  it('YAML: reports line and column', () => {
    const text = 'bridges:\n  - name: br0\n    ports: [\n';
    const err = errorOf(() => loadScenarioText(text, 's.yaml'));
    assert.match(err.message, /^s\.yaml:\d+:\d+: \S/);
    assert.doesNotMatch(err.message, /\n/);
  });

  it('YAML: a bad indentation points at the line', () => {
    const text = 'bridges:\n  - name: br0\n   ports: []\n';
    const err = errorOf(() => loadScenarioText(text, 's.yaml'));
    assert.match(err.message, /^s\.yaml:3:\d+: /);
  });

  it('YAML: duplicate keys are errors', () => {
    const err = errorOf(() => loadScenarioText('bridges: []\nbridges: []\n', 's.yml'));
    assert.match(err.message, /^s\.yml:2:1: map keys must be unique/);
  });

  it('detects JSON by its first character when the name says nothing', () => {
    const err = errorOf(() => loadScenarioText('{"bridges": [}', 'scenario'));
    assert.equal(err.message, "scenario:1:14: expected a value, found '}'");
  });

  it('reports an unreadable scenario file', () => {
    const dir = tempDir();
    const file = path.join(dir, 'nope.json');
    const err = errorOf(() => loadScenario(file));
    assert.equal(err.message, `${file}: cannot read scenario: no such file`);
    assert.equal(
      errorOf(() => loadScenario(dir)).message,
      `${dir}: cannot read scenario: is a directory`,
    );
  });
});

describe('schema errors', () => {
  it('says file, line, column, path, what was expected and what was found', () => {
    const text = [
      '{"bridges": [',
      '  {"name": "br0", "ports": []},',
      '  {"name": "br1", "ports": [{"name": "p1", "ofport": "x"}]}',
      ']}',
    ].join('\n');
    const err = errorOf(() => loadScenarioText(text, 'scenario.json'));
    assert.equal(
      err.message,
      'scenario.json:3:54: bridges[1].ports[0].ofport: expected a number from 1 to 65279, got "x"',
    );
    assert.ok(errorOf(() => loadScenarioText(text, 'scenario.json')).name === ScenarioError.name);
  });

  it('points into YAML too', () => {
    const text = 'bridges:\n  - name: br0\n    ports:\n      - {name: p1, ofport: 70000}\n';
    assert.equal(
      errorOf(() => loadScenarioText(text, 's.yaml')).message,
      's.yaml:4:28: bridges[0].ports[0].ofport: expected a number from 1 to 65279, got 70000',
    );
  });

  const cases: [string, (o: Record<string, any>) => void, string][] = [
    [
      'missing name',
      (o) => delete o.bridges[0].name,
      'bridges[0].name: missing (expected a name)',
    ],
    [
      'unknown key, with a guess',
      (o) => {
        o.bridges[0].flow = o.bridges[0].flows;
        delete o.bridges[0].flows;
      },
      'bridges[0].flow: unknown key "flow" (did you mean "flows"?)',
    ],
    [
      'unknown key wins over the missing key it misspells',
      (o) => {
        o.bridges[0].ports[0].nmae = 'vm1';
        delete o.bridges[0].ports[0].name;
      },
      'bridges[0].ports[0].nmae: unknown key "nmae" (did you mean "name"?)',
    ],
    [
      'unknown key, no guess',
      (o) => (o.zzz = 1),
      'zzz: unknown key "zzz"; expected one of: comment, pmd, mtu, ovs_other_config, ' +
        'ofctl_args, ' +
        'keep_local_ip, bridges, routes, neighbors, vsctl, appctl',
    ],
    [
      'bad port type',
      (o) => (o.bridges[0].ports[0].type = 'geneve'),
      'bridges[0].ports[0].type: expected a port type: internal, dummy, system, tap, dpdk, ' +
        'afxdp, ' +
        'patch, vxlan, uplink, got "geneve"',
    ],
    [
      'bad ofport',
      (o) => (o.bridges[0].ports[0].ofport = 0),
      'bridges[0].ports[0].ofport: expected a number from 1 to 65279, got 0',
    ],
    [
      'fractional ofport',
      (o) => (o.bridges[0].ports[0].ofport = 1.5),
      'bridges[0].ports[0].ofport: expected a number from 1 to 65279, got 1.5',
    ],
    [
      'bad tag',
      (o) => (o.bridges[0].ports[0].tag = 4096),
      'bridges[0].ports[0].tag: expected a number from 0 to 4095, got 4096',
    ],
    [
      'bad fail_mode',
      (o) => (o.bridges[0].fail_mode = 'open'),
      'bridges[0].fail_mode: expected secure or standalone, got "open"',
    ],
    [
      'bad bridge MAC',
      (o) => (o.bridges[2].mac = 'aa:55:aa:55:00'),
      'bridges[2].mac: expected a MAC address like aa:bb:cc:dd:ee:ff, got "aa:55:aa:55:00"',
    ],
    [
      'bridge IP without prefix',
      (o) => (o.bridges[2].ip = '192.168.1.12'),
      'bridges[2].ip: expected an address with a prefix length like 192.168.1.0/24, ' +
        'got "192.168.1.12"',
    ],
    [
      'bad route prefix',
      (o) => (o.routes[0].prefix = '192.168.1.0/33'),
      'routes[0].prefix: expected an address with a prefix length like 192.168.1.0/24, ' +
        'got "192.168.1.0/33"',
    ],
    [
      'bad route gateway',
      (o) => (o.routes[0].gw = 'gateway'),
      'routes[0].gw: expected an IP address like 192.168.1.12, got "gateway"',
    ],
    [
      'bad neighbour IP',
      (o) => (o.neighbors[0].ip = '192.168.1'),
      'neighbors[0].ip: expected an IP address like 192.168.1.12, got "192.168.1"',
    ],
    [
      'bad neighbour MAC',
      (o) => (o.neighbors[0].mac = 'aabbcc000013'),
      'neighbors[0].mac: expected a MAC address like aa:bb:cc:dd:ee:ff, got "aabbcc000013"',
    ],
    [
      'name with a slash',
      (o) => (o.bridges[0].ports[0].name = 'a/b'),
      `bridges[0].ports[0].name: expected a name without '/' or spaces, got "a/b"`,
    ],
    [
      'name ..',
      (o) => (o.bridges[0].name = '..'),
      'bridges[0].name: expected a name other than "." or "..", got ".."',
    ],
    [
      'bridges not an array',
      (o) => (o.bridges = {}),
      'bridges: expected an array of bridges, got an object',
    ],
    [
      'options not an object',
      (o) => (o.bridges[1].ports[1].options = 'remote_ip=1.2.3.4'),
      'bridges[1].ports[1].options: expected an object, got "remote_ip=1.2.3.4"',
    ],
  ];
  for (const [what, mutate, message] of cases) {
    it(what, () => {
      const obj = oneNode();
      mutate(obj);
      assert.equal(withoutPos(jsonError(obj)), `scenario.json: ${message}`);
    });
  }

  it('needs bridges or nodes, not both', () => {
    assert.equal(
      jsonError({ networks: [] }),
      'scenario.json:1:1: expected an object with "bridges" (one-node scenario) or "nodes" ' +
        '(multi-node scenario)',
    );
    assert.equal(
      jsonError([]),
      'scenario.json:1:1: expected an object with "bridges" (one-node scenario) or "nodes" ' +
        '(multi-node scenario)',
    );
    assert.equal(
      withoutPos(jsonError({ bridges: [], nodes: [] })),
      'scenario.json: nodes: a scenario has either top-level "bridges" or "nodes", not both',
    );
  });
});

describe('consistency checks', () => {
  const cases: [string, (o: Record<string, any>) => void, string][] = [
    [
      'duplicate bridge',
      (o) => (o.bridges[2].name = 'br-int'),
      'bridges[2].name: duplicate bridge name "br-int" (also bridges[0])',
    ],
    [
      'duplicate port name across bridges',
      (o) => (o.bridges[2].ports[0].name = 'vm1'),
      'bridges[2].ports[0].name: duplicate port name "vm1" (also bridges[0].ports[0])',
    ],
    [
      'port named like a bridge',
      (o) => (o.bridges[0].ports[0].name = 'br-phy'),
      'bridges[0].ports[0].name: port name "br-phy" is taken by the LOCAL port of bridge "br-phy"',
    ],
    [
      'duplicate ofport',
      (o) => (o.bridges[1].ports[1].ofport = 1),
      'bridges[1].ports[1].ofport: duplicate ofport 1 in bridge "br-tun" (also ports[0])',
    ],
    [
      'patch peer missing',
      (o) => (o.bridges[0].ports[1].options.peer = 'patch-nowhere'),
      'bridges[0].ports[1].options.peer: patch port "patch-tun": no patch port named ' +
        '"patch-nowhere"',
    ],
    [
      'patch peer not pointing back',
      (o) => {
        o.bridges[2].ports.push({
          name: 'patch-x',
          ofport: 2,
          type: 'patch',
          options: { peer: 'patch-int' },
        });
      },
      'bridges[2].ports[1].options.peer: patch port "patch-x": its peer "patch-int" has peer ' +
        '"patch-tun", not "patch-x"',
    ],
    [
      'patch without a peer',
      (o) => delete o.bridges[0].ports[1].options,
      'bridges[0].ports[1].options: patch port "patch-tun" needs options.peer',
    ],
    [
      'peer on a non-patch port',
      (o) => (o.bridges[0].ports[0].options = { peer: 'patch-int' }),
      'bridges[0].ports[0].options: only patch ports have a peer ("vm1" is dummy)',
    ],
    [
      'vxlan without remote_ip',
      (o) => delete o.bridges[1].ports[1].options.remote_ip,
      'bridges[1].ports[1].options: vxlan port "vxlan0" needs options.remote_ip',
    ],
    [
      'vxlan with a bad remote_ip',
      (o) => (o.bridges[1].ports[1].options.remote_ip = '192.168.1.300'),
      'bridges[1].ports[1].options.remote_ip: expected an IP address or "flow", ' +
        'got "192.168.1.300"',
    ],
    [
      'vxlan with a bad local_ip',
      (o) => (o.bridges[1].ports[1].options.local_ip = 'me'),
      'bridges[1].ports[1].options.local_ip: expected an IP address or "flow", got "me"',
    ],
    [
      'vxlan with a bad key',
      (o) => (o.bridges[1].ports[1].options.key = 16777216),
      'bridges[1].ports[1].options.key: expected a VNI (0 to 16777215) or "flow", got "16777216"',
    ],
    [
      'vxlan with a bad dst_port',
      (o) => (o.bridges[1].ports[1].options.dst_port = '0'),
      'bridges[1].ports[1].options.dst_port: expected a UDP port from 1 to 65535, got "0"',
    ],
    [
      'route on an unknown device',
      (o) => (o.routes[0].dev = 'br-phx'),
      'routes[0].dev: no bridge or port named "br-phx"',
    ],
    [
      'neighbour on an unknown device',
      (o) => (o.neighbors[0].dev = 'eth9'),
      'neighbors[0].dev: no bridge or port named "eth9"',
    ],
    [
      'bad trunks in port_set',
      (o) => (o.bridges[0].ports[0].port_set = { trunks: '1,x' }),
      'bridges[0].ports[0].port_set.trunks: expected a number from 0 to 4095, got "x"',
    ],
  ];
  for (const [what, mutate, message] of cases) {
    it(what, () => {
      const obj = oneNode();
      mutate(obj);
      assert.equal(withoutPos(jsonError(obj)), `scenario.json: ${message}`);
    });
  }

  it('accepts remote_ip=flow and numeric keys', () => {
    const obj = oneNode();
    obj.bridges[1].ports[1].options = { remote_ip: 'flow', key: '0x42', in_key: 66 };
    const { scenario } = loadScenarioText(JSON.stringify(obj), 'scenario.json');
    assert.deepEqual(scenario.nodes[0].bridges[1].ports[1].options, {
      remote_ip: 'flow',
      key: '0x42',
      in_key: '66',
    });
  });
});
