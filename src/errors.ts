/**
 * Error classes for everything a user can get wrong. The CLI prints the message of a
 * `DvrlabError` as one line on stderr and exits with code 1; any other exception is an
 * internal error (exit code 2). Messages therefore never contain a newline and say where
 * (file, line, column or JSON path), what was found and what was expected.
 */

/** Base class: a mistake in the user's input, reported as one line. */
export class DvrlabError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(oneLine(message));
    this.name = new.target.name;
    this.code = code;
  }
}

/** Bad command-line usage: unknown option, bad option value, conflicting options. */
export class UsageError extends DvrlabError {
  constructor(message: string) {
    super('E_USAGE', message);
  }
}

/** A scenario file that cannot be read, parsed or validated. */
export class ScenarioError extends DvrlabError {
  constructor(message: string) {
    super('E_SCENARIO', message);
  }
}

/** A port reference that names no port, or several. */
export class PortRefError extends DvrlabError {
  constructor(message: string) {
    super('E_PORTREF', message);
  }
}

/** An input or output file that cannot be read or written. */
export class FileError extends DvrlabError {
  constructor(message: string) {
    super('E_FILE', message);
  }
}

/** The native addon is missing or does not load. */
export class AddonError extends DvrlabError {
  constructor(message: string) {
    super('E_ADDON', message);
  }
}

/** The engine rejected its input (flow text, capture file, ...). Its messages are one line. */
export class EngineError extends DvrlabError {
  constructor(message: string) {
    super('E_ENGINE', message);
  }
}

/**
 * Control characters other than tab: a terminal acts on them (a carriage return overwrites
 * the line, an escape starts a sequence) instead of printing them, and a message quotes
 * names and text from the user's files.
 */
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g;

/**
 * Joins the lines of a message so that it prints as one line, and writes the control
 * characters left in it as `\uXXXX`.
 */
export function oneLine(message: string): string {
  return message
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .join(' ')
    .replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
