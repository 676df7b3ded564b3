/**
 * `dvrlab ctl SOCKET COMMAND ...`: talks to a running `dvrlab run --ctl SOCKET`. One request
 * per connection, a line of JSON; the answer is one JSON document whose `text` is printed
 * (or the whole answer with `--json`). The running instance serves it between batches, so
 * what it shows is the state traffic is forwarded with, and flow changes apply to the next
 * frame.
 */
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { DvrlabError, UsageError } from '../errors.js';
import type { CliIo } from './replay.js';
import { parseHex } from './trace.js';

/** The running instance refused a request, or could not be reached. */
export class CtlError extends DvrlabError {
  constructor(message: string) {
    super('E_CTL', message);
  }
}

export const CTL_COMMANDS = [
  'dump-flows',
  'add-flow',
  'add-flows',
  'del-flows',
  'trace',
  'dpctl',
  'conntrack',
  'stats',
] as const;

const USAGE: Record<(typeof CTL_COMMANDS)[number], string> = {
  'dump-flows': 'dump-flows BRIDGE [FILTER] [--no-stats] [--names]',
  'add-flow': 'add-flow BRIDGE FLOW',
  'add-flows': 'add-flows BRIDGE FILE (one flow per line; - for standard input)',
  'del-flows': 'del-flows BRIDGE [FILTER] [--strict]',
  trace: 'trace BRIDGE FLOW [--packet HEX] [--follow] [--names] [--explain]',
  dpctl: 'dpctl [-m] [--names]',
  conntrack: 'conntrack [NODE] [-s]',
  stats: 'stats',
};

/** The ctl commands and their arguments, for `--help`. */
export function ctlUsage(): string {
  return CTL_COMMANDS.map((c) => `  ${USAGE[c]}`).join('\n');
}

/** Splits `args` into positionals and the flags `allowed` (a flag may take a value). */
function parseArgs(
  cmd: string,
  args: string[],
  allowed: Record<string, 'flag' | 'value'>,
  positionals: [number, number],
): { pos: string[]; flags: Record<string, string | true> } {
  const pos: string[] = [];
  const flags: Record<string, string | true> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a.length > 1 && a.startsWith('-')) {
      const kind = allowed[a];
      if (!kind) {
        throw new UsageError(`ctl ${cmd}: unknown option ${a} (usage: ${usageOf(cmd)})`);
      }
      if (kind === 'value') {
        if (i + 1 >= args.length) throw new UsageError(`ctl ${cmd}: ${a} needs a value`);
        flags[a] = args[++i];
      } else {
        flags[a] = true;
      }
    } else {
      pos.push(a);
    }
  }
  if (pos.length < positionals[0] || pos.length > positionals[1]) {
    throw new UsageError(`ctl ${cmd}: expected ${usageOf(cmd)}`);
  }
  return { pos, flags };
}

function usageOf(cmd: string): string {
  return USAGE[cmd as (typeof CTL_COMMANDS)[number]] ?? cmd;
}

/** The JSON request for `ctl COMMAND ARGS`. */
export function ctlRequest(
  cmd: string,
  args: string[],
  readInput: (path: string) => string = (p) => readFileSync(p === '-' ? 0 : p, 'utf8'),
): Record<string, unknown> {
  switch (cmd) {
    case 'dump-flows': {
      const { pos, flags } = parseArgs(
        cmd,
        args,
        { '--no-stats': 'flag', '--names': 'flag' },
        [1, 2],
      );
      return {
        cmd,
        bridge: pos[0],
        filter: pos[1] ?? '',
        stats: !flags['--no-stats'],
        names: !!flags['--names'],
      };
    }
    case 'add-flow': {
      const { pos } = parseArgs(cmd, args, {}, [2, 2]);
      return { cmd: 'add-flow', bridge: pos[0], flows: pos[1] };
    }
    case 'add-flows': {
      const { pos } = parseArgs(cmd, args, {}, [2, 2]);
      let text: string;
      try {
        text = readInput(pos[1]);
      } catch (e) {
        throw new UsageError(`ctl add-flows: ${pos[1]}: ${(e as Error).message}`);
      }
      return { cmd: 'add-flow', bridge: pos[0], flows: text };
    }
    case 'del-flows': {
      const { pos, flags } = parseArgs(cmd, args, { '--strict': 'flag' }, [1, 2]);
      return { cmd, bridge: pos[0], filter: pos[1] ?? '', strict: !!flags['--strict'] };
    }
    case 'trace': {
      const { pos, flags } = parseArgs(
        cmd,
        args,
        { '--packet': 'value', '--follow': 'flag', '--names': 'flag', '--explain': 'flag' },
        [2, 2],
      );
      const packet = flags['--packet'];
      return {
        cmd,
        bridge: pos[0],
        flow: pos[1],
        packet: typeof packet === 'string' ? parseHex(packet) : undefined,
        follow: !!flags['--follow'],
        names: !!flags['--names'],
        explain: !!flags['--explain'],
      };
    }
    case 'dpctl': {
      const { flags } = parseArgs(cmd, args, { '-m': 'flag', '--names': 'flag' }, [0, 0]);
      return { cmd, verbose: !!flags['-m'], names: !!flags['--names'] };
    }
    case 'conntrack': {
      const { pos, flags } = parseArgs(cmd, args, { '-s': 'flag' }, [0, 1]);
      return { cmd, node: pos[0], stats: !!flags['-s'] };
    }
    case 'stats': {
      parseArgs(cmd, args, {}, [0, 0]);
      return { cmd };
    }
    default:
      throw new UsageError(
        `ctl: unknown command "${cmd}" (expected one of ${CTL_COMMANDS.join(', ')})`,
      );
  }
}

/** Sends one request to the instance listening on `socket`; resolves with its answer. */
export function ctlSend(
  socket: string,
  request: Record<string, unknown>,
  timeoutMs = 30_000,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const conn = net.createConnection(socket);
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new CtlError(`ctl ${socket}: no answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    conn.on('connect', () => conn.end(`${JSON.stringify(request)}\n`));
    conn.on('data', (d) => chunks.push(d));
    conn.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why =
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
          ? 'no dvrlab run --ctl is listening there'
          : e.code === 'EACCES'
            ? "permission denied (the socket is its owner's only)"
            : e.message;
      reject(new CtlError(`ctl ${socket}: ${why}`));
    });
    conn.on('end', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(JSON.parse(text) as Record<string, unknown>);
      } catch {
        reject(new CtlError(`ctl ${socket}: the answer is not JSON (${text.slice(0, 80)})`));
      }
    });
  });
}

/** `dvrlab ctl SOCKET COMMAND ARGS...`. */
export async function ctlCommand(
  socket: string,
  cmd: string,
  args: string[],
  opts: { json?: boolean },
  io: CliIo,
): Promise<number> {
  const request = ctlRequest(cmd, args);
  const answer = await ctlSend(socket, request);
  if (answer.ok !== true) {
    throw new CtlError(`ctl ${cmd}: ${String(answer.error ?? 'failed')}`);
  }
  if (opts.json) {
    const { ok: _ok, ...rest } = answer;
    io.stdout.write(`${JSON.stringify(rest, null, 2)}\n`);
  } else {
    io.stdout.write(String(answer.text ?? ''));
  }
  return 0;
}
