/**
 * Inputs the fuzzer of the topology and scenario loader (test/fuzz/) found, or that its
 * findings led to: each is refused with one line saying where and what (exit code 1 from the
 * CLI), where before it crashed with an internal error, ran out of stack in the `yaml`
 * parser, printed Node warnings or took seconds; and topologies that were accepted but
 * compiled into a scenario the loader refused, with a position in the compiled text (the
 * `topology` target's check, which these break; found by writing such topologies by hand).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { compile } from '../src/neutron/compile.js';
import { loadScenarioOrTopologyText, loadTopologyArgumentText } from '../src/neutron/load.js';
import { MAX_DEPTH } from '../src/scenario/parse.js';
import { closest } from '../src/scenario/schema.js';
import { ROOT, errorOf, tempDir } from './helpers.js';

const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const TOO_DEEP = 'expected at most 100 levels of nested arrays and objects, found more';

/** `dvrlab compile FILE` on `text` written to a temporary FILE. */
function compileFile(name: string, text: string) {
  const dir = tempDir();
  writeFileSync(path.join(dir, name), text);
  const r = spawnSync(process.execPath, [CLI, 'compile', name], { cwd: dir, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The ScenarioError message for `text` loaded as a SCENARIO argument named `name`. */
function failure(name: string, text: string): string {
  const e = errorOf(() => loadScenarioOrTopologyText(text, name));
  assert.equal(e.name, 'ScenarioError', e.message);
  assert.doesNotMatch(e.message, /\n/);
  return e.message;
}

describe('nesting deeper than the loader allows', () => {
  it('is one line with the position in JSON (was: internal error, call stack exceeded)', () => {
    const text = `{"nodes": ${'['.repeat(5000)}${']'.repeat(5000)}}`;
    assert.equal(failure('deep.json', text), `deep.json:1:110: ${TOO_DEEP}`);
    const r = compileFile('deep.json', text);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `dvrlab: deep.json:1:110: ${TOO_DEEP}\n`);
  });

  it('is one line in YAML block sequences (was: "maximum call stack size exceeded")', () => {
    const text = `nodes:\n${'- '.repeat(5000)}1\n`;
    assert.equal(failure('deep.yaml', text), `deep.yaml:2:398: ${TOO_DEEP}`);
  });

  it('is refused before the YAML parser recurses, however deep the flow collections go', () => {
    // Loaded after another deep file in the same process, 100 000 levels made V8 abort the
    // process ("RegExpCompiler Allocation failed - process out of memory", exit 134).
    const text = `nodes: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`;
    failure('before.yaml', `nodes:\n${'- '.repeat(5000)}1\n`);
    assert.equal(failure('deep.yaml', text), `deep.yaml:1:207: ${TOO_DEEP}`);
    const r = compileFile('deep.yaml', text);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `dvrlab: deep.yaml:1:207: ${TOO_DEEP}\n`);
  });

  it("reports '-' in a flow collection as the syntax error it is (was: internal error)", () => {
    // The fuzzer's input: block sequence indicators where a flow mapping goes on; each one
    // took the YAML parser a level deeper.
    const text = `networks: [{name: a,\n  ${'- '.repeat(3000)}x}]\n`;
    const r = compileFile('flow.yaml', text);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'dvrlab: flow.yaml:2:3: block collections are not allowed within flow collections\n',
    );
    const cut = `{\n  "networks": [\n    {\n      "name": "net",\n  ${'- '.repeat(3000)}x\n`;
    assert.equal(
      failure('cut.yaml', cut),
      'cut.yaml:5:3: block collections are not allowed within flow collections',
    );
  });

  it('reports a long list under a key with a value as its error (was: internal error)', () => {
    // After this mistake the YAML parser's stack grew by a level with every line; closing
    // them all at the last line ran out of stack. Reduced from a fuzzer input.
    const text = `n:\n  r: 1\n${'    - a: 1\n      b: 1\n'.repeat(1000)}z: 1\n`;
    const r = compileFile('list.yaml', text);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'dvrlab: list.yaml:2:6: nested mappings are not allowed in compact mappings\n',
    );
  });

  it('counts levels an alias adds, and calls a cycle too deep (was: a JSON error)', () => {
    // 90 levels under the anchor and 15 around the alias: each part is within the limit.
    const aliased = [
      'nodes:',
      '  - name: n1',
      '    bridges: []',
      `    namespaces: &deep ${'['.repeat(90)}${']'.repeat(90)}`,
      `  - name: n2`,
      '    bridges: []',
      `    namespaces: ${'['.repeat(15)}*deep${']'.repeat(15)}`,
    ].join('\n');
    assert.equal(failure('alias.yaml', aliased), `alias.yaml:7:32: ${TOO_DEEP}`);
    const cycle = 'nodes:\n  - name: n1\n    bridges: []\n    namespaces: &ns [*ns]\n';
    assert.equal(failure('cycle.yaml', cycle), `cycle.yaml:4:22: ${TOO_DEEP}`);
  });

  it('leaves 100 levels to the schema checks, in JSON and YAML alike', () => {
    const inner = (n: number) => `${'['.repeat(n - 1)}${']'.repeat(n - 1)}`;
    for (const [name, text] of [
      ['ok.json', `{"nodes": ${inner(MAX_DEPTH)}}`],
      ['ok.yaml', `nodes: ${inner(MAX_DEPTH)}`],
    ]) {
      assert.match(failure(name, text), /nodes\[0\]: expected an object, got an array$/);
    }
    for (const [name, text] of [
      ['no.json', `{"nodes": ${inner(MAX_DEPTH + 1)}}`],
      ['no.yaml', `nodes: ${inner(MAX_DEPTH + 1)}`],
    ]) {
      assert.match(failure(name, text), new RegExp(`: ${TOO_DEEP}$`));
    }
  });
});

describe('YAML oddities', () => {
  it('a collection as a key is an unknown key, without Node warnings on stderr', () => {
    const r = compileFile('key.yaml', '? [a, b]\n: 1\nnetworks: []\nnodes: []\n');
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'dvrlab: key.yaml:1:1: ["[ a, b ]"]: unknown key "[ a, b ]"; expected one of: comment, ' +
        'nodes, networks, routers, vms, dhcp_ports, floating_ips\n',
    );
  });
});

describe('control characters in messages', () => {
  it('are written as \\uXXXX, so that the terminal prints them instead of acting on them', () => {
    // The fuzzer's finds: a backslash before a carriage return in a JSON string, and a
    // carriage return in a YAML key; the line was overwritten from its start. An escape
    // character in a name would start a terminal sequence.
    const cr = compileFile('cr.json', '{"nodes": [], "networks": [{"name": "a\\\r"}]}\n');
    assert.equal(cr.code, 1);
    assert.equal(cr.stderr, "dvrlab: cr.json:1:39: bad escape '\\\\u000d' in string\n");
    const key = [
      'nodes:',
      '  - {name: n1, agent_mode: dvr, tunnel_ip: 10.0.0.1, "unde\\rlay_mac": x}',
      'networks: []',
    ].join('\n');
    assert.equal(
      failure('key.yaml', key),
      'key.yaml:2:71: nodes[0]["unde\\rlay_mac"]: unknown key "unde\\u000dlay_mac" ' +
        '(did you mean "underlay_mac"?)',
    );
    const esc = compileFile(
      'esc.yaml',
      [
        'nodes: [{name: n1, agent_mode: dvr, tunnel_ip: 10.0.0.1}]',
        'networks: []',
        'vms: [{name: v, node: "\\e[31mred", network: x, ip: 10.0.0.5}]',
      ].join('\n'),
    );
    assert.equal(
      esc.stderr,
      'dvrlab: esc.yaml:3:23: vms[0].node: no node named "\\u001b[31mred" (known: n1)\n',
    );
  });
});

describe('a very long unknown key', () => {
  it('is refused without an edit-distance table per known key (was: seconds)', () => {
    const key = 'k'.repeat(200_000);
    const text = JSON.stringify({ nodes: [], networks: [], [key]: 1 });
    const start = process.hrtime.bigint();
    const m = failure('long.json', text);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    assert.ok(
      m.endsWith(
        `: unknown key "${key}"; expected one of: comment, nodes, networks, ` +
          'routers, vms, dhcp_ports, floating_ips',
      ),
      m.slice(-200),
    );
    // It took 3.5 s before; a generous bound for a loaded machine.
    assert.ok(ms < 1500, `${ms} ms`);
  });

  it('the "did you mean" guess is the same as before', () => {
    assert.equal(closest('flow', ['flows', 'ports']), 'flows');
    assert.equal(closest('nodes ', ['nodes', 'networks']), 'nodes');
    assert.equal(closest('x'.repeat(50), ['flows', 'ports']), undefined);
    // Lower case may change the length (U+0130 becomes two code units): still compared.
    assert.equal(closest('\u0130ps', ['ips']), 'ips');
  });
});

/** A small valid topology (the one of neutron-schema.test.ts), as an object to vary. */
function base(): Record<string, any> {
  return {
    nodes: [
      { name: 'nn', agent_mode: 'dvr_snat', tunnel_ip: '10.1.1.1' },
      { name: 'cn', agent_mode: 'dvr', tunnel_ip: '10.1.1.2' },
    ],
    networks: [
      {
        name: 'net',
        vni: 7,
        subnets: [{ name: 'sn', cidr: '10.5.0.0/24', gateway_ip: '10.5.0.1' }],
      },
      {
        name: 'ext',
        external: true,
        subnets: [{ name: 'ext-sn', cidr: '192.0.2.0/24', gateway_ip: '192.0.2.1' }],
      },
    ],
    routers: [
      { name: 'r', snat_node: 'nn', gateway: { network: 'ext' }, interfaces: [{ subnet: 'sn' }] },
    ],
    vms: [{ name: 'a', node: 'cn', network: 'net', ip: '10.5.0.10' }],
    floating_ips: [{ ip: '192.0.2.50', vm: 'a' }],
  };
}

/** The one-line message for `base()` changed by `change`, without its line and column. */
function topologyFailure(change: (t: Record<string, any>) => void): string {
  const t = base();
  change(t);
  const e = errorOf(() =>
    compile(loadTopologyArgumentText(JSON.stringify(t, null, 2), 'topo.json')),
  );
  assert.equal(e.name, 'ScenarioError', e.message);
  assert.match(e.message, /^topo\.json:\d+:\d+: /);
  return e.message.replace(/^topo\.json:\d+:\d+: /, '');
}

describe('topologies that compiled into scenarios the loader refused', () => {
  it('the base topology compiles and loads', () => {
    const r = loadScenarioOrTopologyText(JSON.stringify(base()), 'topo.json');
    assert.equal(r.scenario.nodes.length, 2);
  });

  it('an uplink named like another port or a bridge of its node', () => {
    const uplink = (name: string) => (t: Record<string, any>) => {
      t.nodes[0].uplink = { name };
    };
    // Before: `topo.json (compiled): nodes[0].bridges[2].ports[0].name: duplicate port name
    // "patch-int" (also nodes[0].bridges[1].ports[0])`, with nothing to fix at that path.
    for (const [name, taken] of [
      ['patch-int', 'a port of br-tun'],
      ['vxlan-0a010102', 'a port of br-tun'],
      ['int-br-ex', 'a port of br-int'],
      ['phy-br-ex', 'the patch port of br-ex'],
      ['br-tun', 'bridge br-tun (its LOCAL port)'],
    ]) {
      assert.equal(
        topologyFailure(uplink(name)),
        `nodes[0].uplink.name: "${name}" is taken by ${taken}`,
      );
    }
    const t = base();
    t.nodes[0].uplink = { name: 'eth1' };
    const r = loadScenarioOrTopologyText(JSON.stringify(t), 'topo.json');
    assert.ok(r.scenario.nodes[0].bridges[2].ports.some((p) => p.name === 'eth1'));
  });

  it('"." and ".." as node, VM and uplink names', () => {
    const expected = 'expected a name other than "." or "..", got';
    assert.equal(
      topologyFailure((t) => {
        t.nodes[1].name = '..';
        t.vms[0].node = '..';
      }),
      `nodes[1].name: ${expected} ".."`,
    );
    assert.equal(
      topologyFailure((t) => {
        t.vms[0].name = '.';
        t.floating_ips[0].vm = '.';
      }),
      `vms[0].name: ${expected} "."`,
    );
    assert.equal(
      topologyFailure((t) => {
        t.nodes[0].uplink = { name: '.' };
      }),
      `nodes[0].uplink.name: ${expected} "."`,
    );
  });

  it('two DHCP ports of one network on one node (both were tap<the same id>)', () => {
    assert.equal(
      topologyFailure((t) => {
        t.dhcp_ports = [
          { network: 'net', node: 'cn', ips: ['10.5.0.3'] },
          { network: 'net', node: 'cn', ips: ['10.5.0.4'] },
        ];
      }),
      'dhcp_ports[1].node: network "net" already has a DHCP port on node "cn" (dhcp_ports[0])',
    );
  });

  it('port ids whose first 11 characters, the device name, are the same', () => {
    const sn2 = { name: 'sn2', cidr: '10.7.0.0/24', gateway_ip: '10.7.0.1' };
    // Two sg- ports on the snat node were one port of the compiled br-int.
    assert.equal(
      topologyFailure((t) => {
        t.routers[0].interfaces[0].snat = { port_id: '28e6e267-f3aa' };
        t.networks[0].subnets.push(sn2);
        t.routers[0].interfaces.push({ subnet: 'sn2', snat: { port_id: '28e6e267-f3bb' } });
      }),
      'routers[0].interfaces[1].snat.port_id: port sg-28e6e267-f3 is already ' +
        "router r's SNAT port on sn",
    );
    // So were two DHCP ports on one node; on two nodes they are refused all the same, as VM
    // ports already were: Neutron's port ids are unique.
    for (const node of ['cn', 'nn']) {
      assert.equal(
        topologyFailure((t) => {
          t.networks.push({ name: 'net2', vni: 9, subnets: [sn2] });
          t.dhcp_ports = [
            { network: 'net', node: 'cn', ips: ['10.5.0.3'], port_id: '28e6e267-f3aa' },
            { network: 'net2', node, ips: ['10.7.0.3'], port_id: '28e6e267-f3bb' },
          ];
        }),
        'dhcp_ports[1].port_id: port tap28e6e267-f3 is already the DHCP port of net on cn',
      );
    }
  });
});
