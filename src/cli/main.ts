/**
 * The `dvrlab` command line: option parsing with commander, and the one rule for errors.
 *
 * Exit codes: 0 on success (and for `--help`/`--version`); 1 with one line on stderr,
 * `dvrlab: ...`, for any mistake in the user's input (a `DvrlabError` or a commander usage
 * error); 2 for anything else, printed as its message plus "(internal error)", with the stack
 * only when DVRLAB_DEBUG is set. Nothing here loads the native addon: only a command that
 * runs the engine does, so help and argument errors work before it is built.
 */
import { readFileSync } from 'node:fs';
import {
  Command,
  CommanderError,
  InvalidArgumentError,
  Option,
} from '@commander-js/extra-typings';
import { DvrlabError, oneLine } from '../errors.js';
import { compileCommand } from './compile.js';
import { DEMO_OUT, demoCommand } from './demo.js';
import { type CliIo, type EngineFactory, nativeEngine, replayCommand } from './replay.js';
import { dpctlCommand, dumpFlowsCommand, showCommand } from './inspect.js';
import { labDown, labUp, runCommand } from './live.js';
import { CTL_COMMANDS, ctlCommand, ctlUsage } from './ctl.js';
import { traceCommand } from './trace.js';
import { benchCommand } from './bench.js';

/** The package version, read from package.json (two levels up from dist/src/cli/). */
export function packageVersion(): string {
  const url = new URL('../../../package.json', import.meta.url);
  const pkg = JSON.parse(readFileSync(url, 'utf8')) as { version: string };
  return pkg.version;
}

function wholeNumber(min: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
      throw new InvalidArgumentError(`expected a whole number >= ${min}.`);
    }
    return Number(value);
  };
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError('expected a number > 0.');
  }
  return n;
}

function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new InvalidArgumentError('expected a number >= 0.');
  }
  return n;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** What the commands run on; tests replace the engine. */
export interface CliDeps {
  makeEngine?: EngineFactory;
}

/** Builds the program; `result` receives the exit code of the command that ran. */
function buildProgram(io: CliIo, result: { code: number }, deps: CliDeps) {
  const program = new Command()
    .name('dvrlab')
    .description(
      'Userspace datapath emulator for OpenStack/Neutron DVR networks: forwards captured ' +
        'packets through the same OpenFlow tables Open vSwitch 3.1 would run.',
    )
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'show help')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      // Usage errors are printed by `run` as one line.
      outputError: () => undefined,
    });

  program
    .command('demo')
    .summary('replay the four DVR packet paths on the seed devstack and print them hop by hop')
    .description(
      'Build the built-in devstack-dvr topology, write a capture of the four packet paths\n' +
        'of the DVR reference (same subnet and different subnets across nodes, SNAT through\n' +
        'the network node, a floating IP), each way and with its ARP, replay it once with\n' +
        'every packet traced, and print each packet hop by hop: node, bridge or namespace,\n' +
        'what changed and where it left. Writes DIR/input/*.pcap (the capture), the replay\n' +
        'outputs DIR/NODE/NAME.pcap and DIR/stats.json, then prints the replay summary.',
    )
    .option('--out <dir>', 'output directory (created if needed)', DEMO_OUT)
    .option('--json', 'print the paths, hops and statistics as JSON')
    .action(async (opts) => {
      result.code = await demoCommand(opts, io);
    });

  program
    .command('replay')
    .summary('replay pcap files through a scenario and write what every port emits')
    .description(
      'Replay pcap files through a scenario. Each input frame is carried to completion\n' +
        'before the next one enters; several --in files are merged in timestamp order.\n' +
        'Writes DIR/NODE/NAME.pcap (DIR/PORT.pcap for a one-node scenario) for every port\n' +
        'that emitted, and DIR/stats.json, then prints a tcpreplay-style summary.\n' +
        'With --map (a Neutron topology only), any capture goes through the cloud, as\n' +
        'tcprewrite would send it: each of its hosts becomes a VM (private addresses,\n' +
        'MACs) or a host outside behind the external gateway (public addresses), every\n' +
        'frame is rewritten (MACs, IPs, ARP, checksums; VLAN tags removed) and injected\n' +
        "at its source host's port; --in takes FILE alone. Also writes DIR/map.json\n" +
        '(each host of the capture and the endpoint it became).',
    )
    .argument(
      '<scenario>',
      'scenario file (JSON or YAML): one-node (bridges[]), nodes[], or a Neutron topology ' +
        '(networks[]; or the built-in devstack-dvr), which is compiled first',
    )
    .requiredOption(
      '--in <portref=file>',
      'inject FILE on port PORTREF (NODE/BRIDGE/PORT, a VM name, NODE/underlay, ' +
        'NODE/uplink; one-node: BRIDGE/PORT, BRIDGE or PORT); with --map, FILE alone; ' +
        'repeatable',
      collect,
    )
    .requiredOption('--out <dir>', 'output directory (created if needed)')
    .option(
      '--map',
      "map the capture's hosts onto the topology's VMs and the outside world, rewrite " +
        "each frame to match and inject it at its source host's port (see README)",
    )
    .option('--loop <n>', 'replay the inputs N times', wholeNumber(1), 1)
    .addOption(
      new Option('--topspeed', 'replay as fast as possible (the default)').conflicts([
        'multiplier',
        'pps',
      ]),
    )
    .addOption(
      new Option('--multiplier <x>', 'follow capture timing, X times faster')
        .argParser(positiveNumber)
        .conflicts(['topspeed', 'pps']),
    )
    .addOption(
      new Option('--pps <n>', 'replay at N packets per second')
        .argParser(positiveNumber)
        .conflicts(['topspeed', 'multiplier']),
    )
    .option('--limit <n>', 'stop after N input packets', wholeNumber(1))
    .option('--nsec', 'write nanosecond-resolution pcaps')
    .option('--json', 'print the statistics as JSON instead of the summary')
    .option('--no-progress', 'do not draw a progress bar')
    .option('-q, --quiet', 'print no summary')
    .option(
      '--trace-packet <n>',
      'trace input packet N (1-based) as it goes, with the state the run had built by then; ' +
        'printed, and written to DIR/trace.txt and DIR/trace.json',
      wholeNumber(1),
    )
    .option('--names', 'port names instead of numbers in the trace')
    .option('--flow-limit <n>', 'most megaflows per node (default 1048576)', wholeNumber(1))
    .option(
      '--max-idle <ms>',
      'remove megaflows unused for MS milliseconds of capture time (default: never)',
      wholeNumber(1),
    )
    .option(
      '--ct-max <n>',
      'most conntrack connections per node (default 3000000)',
      wholeNumber(1),
    )
    .action(async (scenario, opts) => {
      const args = { ...opts, in: opts.in ?? [] };
      result.code = await replayCommand(scenario, args, io, deps.makeEngine ?? nativeEngine);
    });

  program
    .command('trace')
    .summary('trace a packet through the tables, as ovs-appctl ofproto/trace does')
    .description(
      "Trace a packet through the scenario's real datapath and print each table, rule and\n" +
        'action in the ofproto/trace layout, ending with the Megaflow: and Datapath\n' +
        'actions: lines. FLOW is in ovs-ofctl syntax (in_port=1,udp,nw_dst=10.0.0.2,...;\n' +
        'unspecified fields are zero); with --packet or --pcap only its in_port is used.',
    )
    .argument('<scenario>', 'scenario file (JSON or YAML)')
    .argument('<bridge>', 'NODE/BRIDGE (BRIDGE in a one-node scenario)')
    .argument('<flow>', 'the flow, e.g. in_port=1,udp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_dst=53')
    .option('--packet <hex>', 'trace these bytes instead of a packet built from the flow')
    .option('--pcap <file>', 'trace a packet from this capture')
    .option('--index <n>', 'the packet of --pcap to trace (1-based)', wholeNumber(1))
    .option('--follow', 'continue across patch ports, tunnels and nodes to where it ends')
    .option('--names', 'show port names instead of numbers')
    .option('--explain', 'say, for each megaflow field, which table and rule made it matched')
    .option('--json', 'print the trace as JSON')
    .action((scenario, bridge, flow, opts) => {
      result.code = traceCommand(scenario, bridge, flow, opts, io);
    });

  program
    .command('dump-flows')
    .summary("print a bridge's OpenFlow tables as ovs-ofctl dump-flows does")
    .argument('<scenario>', 'scenario file (JSON or YAML)')
    .argument('<bridge>', 'NODE/BRIDGE (BRIDGE in a one-node scenario)')
    .argument('[filter]', 'only flows matching this, e.g. table=10 or "cookie=0x1/-1,ip"')
    .option('--no-stats', 'print matches and actions only')
    .option('--names', 'show port names instead of numbers')
    .option('--json', 'print the flows as JSON records')
    .action((scenario, bridge, filter, opts) => {
      result.code = dumpFlowsCommand(scenario, bridge, filter, opts, io);
    });

  program
    .command('show')
    .summary('print the bridges and ports as ovs-vsctl show (or ovs-ofctl show) does')
    .argument('<scenario>', 'scenario file (JSON or YAML)')
    .option('--ofctl <bridge>', 'print `ovs-ofctl show BRIDGE` (NODE/BRIDGE) instead')
    .option('--json', 'print the ports as JSON records')
    .action((scenario, opts) => {
      result.code = showCommand(scenario, opts, io);
    });

  program
    .command('dpctl')
    .summary('replay captures and print the cached megaflows as dpctl/dump-flows does')
    .argument('<scenario>', 'scenario file (JSON or YAML)')
    .requiredOption('--in <portref=file>', 'inject FILE on port PORTREF; repeatable', collect)
    .option('-m', 'print every field, masks included (dpctl/dump-flows -m)')
    .option('--names', 'show port names instead of numbers')
    .option('--json', 'print the megaflows as a JSON array of lines')
    .action(async (scenario, opts) => {
      result.code = await dpctlCommand(scenario, { ...opts, in: opts.in ?? [] }, io);
    });

  program
    .command('bench')
    .summary("measure one node's datapath on captures held in memory")
    .description(
      'Read the captures into memory and push them through the node of their ports\n' +
        'again and again. Forward mode times warm passes after one untimed warm-up\n' +
        'pass; setup mode empties the megaflow cache, the EMC and conntrack before each\n' +
        'timed pass (every flow an upcall, every connection new). Outputs are counted,\n' +
        'not written. Prints packets per second, ns per packet, hits per cache tier,\n' +
        'megaflows and subtables, upcalls and setups per second, conntrack entries and\n' +
        'new connections per second.',
    )
    .argument('<scenario>', 'scenario file (JSON or YAML), a Neutron topology, or devstack-dvr')
    .requiredOption(
      '--in <portref=file>',
      'the frames of capture FILE arrive on port PORTREF (as for replay); repeatable, all ' +
        'on one node; merged in timestamp order; with --map, FILE alone',
      collect,
    )
    .option('--map', "map the capture's hosts onto the topology's VMs first, as replay --map")
    .option('--json', 'print the figures as one JSON object')
    .option(
      '--passes <n>',
      'timed passes (forward: at least N, until --min-seconds; setup: exactly N)',
      wholeNumber(1),
      3,
    )
    .option(
      '--min-seconds <s>',
      'forward mode: keep timing passes for at least S seconds',
      nonNegativeNumber,
      1,
    )
    .option(
      '--threads <n>',
      'split the flows over N threads (1 to 64) by their RSS hash, each with a datapath of ' +
        'its own (as OVS PMD threads); the rate is the sum of theirs',
      (v: string) => {
        const n = wholeNumber(1)(v);
        if (n > 64) throw new InvalidArgumentError('expected a whole number from 1 to 64.');
        return n;
      },
      1,
    )
    .addOption(
      new Option('--mode <mode>', 'forward (warm caches) or setup (cold caches every pass)')
        .choices(['forward', 'setup'] as const)
        .default('forward' as const),
    )
    .option(
      '--instructions',
      'count instructions per packet: the same benchmark under valgrind callgrind, ' +
        'counting the timed loop alone',
    )
    .option(
      '--emc-always',
      'probe the exact-match cache for every packet, as OVS does (by default bursts leave ' +
        'it out while fewer than half of its probes hit)',
    )
    .option('--null', 'also time the null replay: read the captures, write a pcap, no forwarding')
    .option('--oracle', 'also run the OVS 3.1 oracle on the same one-node scenario and captures')
    .action(async (scenario, opts) => {
      const args = { ...opts, in: opts.in ?? [] };
      result.code = await benchCommand(scenario, args, io);
    });

  program
    .command('compile')
    .summary('compile a Neutron topology into a raw multi-node scenario')
    .description(
      'Compile a Neutron topology (nodes, networks, routers, VMs, floating IPs)\n' +
        'into the raw multi-node scenario the Ocata OVS and L3 agents set up:\n' +
        'br-int, br-tun and br-ex with their ports and flows (as ovs-ofctl\n' +
        'dump-flows prints them) and the qrouter, snat and fip namespaces.\n' +
        'TOPOLOGY is a file or the built-in devstack-dvr.',
    )
    .argument('<topology>', 'topology file (JSON or YAML), or devstack-dvr')
    .option('-o, --output <file>', 'write to FILE (.yaml, .yml or .json) instead of stdout')
    .action((topology, opts) => {
      result.code = compileCommand(topology, opts, io);
    });

  program
    .command('run')
    .summary('forward live traffic: TAP devices, one node per process over real VXLAN')
    .description(
      'Create a TAP device (/dev/net/tun) on each given port and forward between them\n' +
        'through the scenario in real time, until Ctrl-C or SIGTERM; then print the\n' +
        'counters. The devices disappear when dvrlab stops. Needs root (CAP_NET_ADMIN).\n\n' +
        'With --node, this process runs that node only: what it sends out of its underlay\n' +
        'goes as real VXLAN over UDP to the process, host or kernel VTEP that has the\n' +
        "destination's address, and what arrives there enters its underlay. Peers that do\n" +
        'not answer are reported. --ctl opens a control socket for `dvrlab ctl`.',
    )
    .argument('<scenario>', 'scenario file, a Neutron topology, or devstack-dvr')
    .option(
      '--tap <portref=ifname>',
      'a TAP device IFNAME (NETNS/IFNAME: in that network namespace) on port PORTREF; repeatable',
      collect,
    )
    .option(
      '--iface <portref=ifname>',
      'attach the existing interface IFNAME (a veth, a NIC) to port PORTREF through ' +
        'libpcap; repeatable',
      collect,
    )
    .option('--node <name>', 'run this node only; the others are reached over the UDP underlay')
    .option(
      '--underlay <[node=]ip:port>',
      "this node's UDP address (default: its tunnel address, port 4789), or NODE=IP:PORT " +
        'where another node is; repeatable',
      collect,
    )
    .option('--ctl <socket>', 'listen for `dvrlab ctl` on this Unix socket (owner only)')
    .option('--flow-limit <n>', 'most megaflows per node (default 1048576)', wholeNumber(1))
    .option(
      '--max-idle <ms>',
      'remove megaflows unused for MS milliseconds (default 10000)',
      wholeNumber(1),
    )
    .option(
      '--ct-max <n>',
      'most conntrack connections per node (default 3000000)',
      wholeNumber(1),
    )
    .action(async (scenario, opts) => {
      const args = {
        tap: opts.tap ?? [],
        iface: opts.iface ?? [],
        underlay: opts.underlay ?? [],
        node: opts.node,
        ctl: opts.ctl,
        flowLimit: opts.flowLimit,
        maxIdle: opts.maxIdle,
        ctMax: opts.ctMax,
      };
      result.code = await runCommand(scenario, args, io);
    });

  program
    .command('ctl')
    .summary('query or change a running `dvrlab run --ctl SOCKET`')
    .description(
      'Send one command to the instance listening on SOCKET and print its answer:\n' +
        ctlUsage() +
        '\nBRIDGE is NODE/BRIDGE (BRIDGE in a one-node scenario); flows and filters are in\n' +
        'ovs-ofctl syntax. Flow changes apply to the next frame (the megaflows are\n' +
        'revalidated at once).',
    )
    .argument('<socket>', 'the control socket')
    .argument('<command>', CTL_COMMANDS.join(' | '))
    .argument('[args...]', "the command's arguments")
    .option('--json', 'print the whole answer as JSON')
    .allowUnknownOption()
    .helpOption('-h, --help')
    .action(async (socket, command, args, opts) => {
      result.code = await ctlCommand(socket, command, args ?? [], opts, io);
    });

  const lab = program
    .command('lab')
    .summary('a lab of network namespaces around a running Neutron topology');
  lab
    .command('up')
    .summary('give every VM and the outside world a namespace, and forward until stopped')
    .description(
      'Give every VM a network namespace named after it, attached by TAP to its port,\n' +
        'with its MAC, address, default route and MTU; and a namespace "outside" holding\n' +
        "the external gateway (on a bridge joining the nodes' uplinks) and the hosts\n" +
        '8.8.8.8, 1.1.1.1 and 198.51.100.9. Prints "ready" once traffic can flow; on\n' +
        'Ctrl-C or SIGTERM stops, prints the counters and removes exactly what it created.',
    )
    .argument('<topology>', 'a Neutron topology file, or devstack-dvr')
    .option(
      '--processes',
      'run every node in its own process (dvrlab run --node), exchanging real VXLAN over ' +
        'UDP on loopback (127.0.1.N:4789)',
    )
    .action(async (topology, opts) => {
      result.code = await labUp(topology, io, { processes: opts.processes ?? false });
    });
  lab
    .command('down')
    .summary('remove what a lab that did not stop cleanly left behind')
    .argument('<topology>', 'the topology the lab was started with')
    .action((topology) => {
      result.code = labDown(topology, io);
    });

  return program;
}

/** Runs the CLI on `argv` (without the node and script paths) and returns the exit code. */
export async function run(argv: string[], io: CliIo, deps: CliDeps = {}): Promise<number> {
  const result = { code: 0 };
  try {
    const program = buildProgram(io, result, deps);
    await program.parseAsync(argv, { from: 'user' });
    return result.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return 0;
      if (e.code === 'commander.help' || e.code === 'commander.helpDisplayed') {
        return e.exitCode;
      }
      io.stderr.write(`dvrlab: ${oneLine(e.message.replace(/^error: /, ''))}\n`);
      return 1;
    }
    if (e instanceof DvrlabError) {
      io.stderr.write(`dvrlab: ${e.message}\n`);
      return 1;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    io.stderr.write(`dvrlab: ${oneLine(err.message)} (internal error)\n`);
    if (process.env.DVRLAB_DEBUG) io.stderr.write(`${err.stack ?? ''}\n`);
    return 2;
  }
}
