#!/usr/bin/env node
/**
 * The `dvrlab` executable: runs the CLI on the process arguments and sets the exit code.
 * The exit code is set rather than forced so that pending output is flushed first.
 */
import { run } from './cli/main.js';

process.exitCode = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stderrIsTTY: Boolean(process.stderr.isTTY),
});
