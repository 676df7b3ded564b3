/**
 * Parses scenario text (JSON or YAML) into plain values, remembering where each value came
 * from so that later checks can report `file:line:column`.
 *
 * JSON goes through a small parser of our own rather than `JSON.parse`: V8's messages change
 * between Node versions and give a byte offset, while users need a line, a column and what was
 * expected there. YAML goes through the `yaml` package, whose nodes carry source ranges.
 * Invariants: every syntax error is a `ScenarioError` whose message starts with
 * `FILE:LINE:COLUMN: `; lines and columns are 1-based. A parsed value nests at most
 * `MAX_DEPTH` arrays and objects, and the `yaml` parser, which recurses, is kept from going
 * deeper than twice that, so that no step runs out of stack on a hostile file.
 */
import { type Document, Composer, Lexer, LineCounter, Parser, YAMLParseError, isNode } from 'yaml';
import { ScenarioError } from '../errors.js';

/** The deepest nesting of arrays and objects a scenario or topology file may have. */
export const MAX_DEPTH = 100;

const TOO_DEEP = `expected at most ${MAX_DEPTH} levels of nested arrays and objects, found more`;

/** One step of a path into a parsed document: an object key or an array index. */
export type PathSeg = string | number;

/** A 1-based source position. */
export interface SourcePos {
  line: number;
  column: number;
}

/** A parsed scenario text and a way to find where a value was written. */
export interface ParsedText {
  value: unknown;
  /** The position of the value at `path`, or of its nearest ancestor that exists. */
  locate(path: readonly PathSeg[]): SourcePos | undefined;
}

/** The syntax a scenario file is written in. */
export type TextFormat = 'json' | 'yaml';

/** Picks the syntax from the file name, or from the first character when it says nothing. */
export function detectFormat(file: string, text: string): TextFormat {
  const lower = file.toLowerCase();
  if (lower.endsWith('.json')) return 'json';
  if (lower.endsWith('.yaml') || lower.endsWith('.yml')) return 'yaml';
  return text
    .replace(/^\uFEFF/, '')
    .trimStart()
    .startsWith('{')
    ? 'json'
    : 'yaml';
}

/** Parses `text` (read from `file`, used in messages) as JSON or YAML. */
export function parseText(text: string, file: string, format: TextFormat): ParsedText {
  return format === 'json' ? parseJson(text, file) : parseYaml(text, file);
}

/** Formats a path the way users write it in JavaScript: `bridges[1].ports[0].ofport`. */
export function formatPath(path: readonly PathSeg[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** Computes 1-based line/column positions of offsets in a text. */
class LineIndex {
  private readonly starts: number[] = [0];

  constructor(text: string) {
    for (let i = 0; i < text.length; i++) {
      if (text.charCodeAt(i) === 10) this.starts.push(i + 1);
    }
  }

  pos(offset: number): SourcePos {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - this.starts[lo] + 1 };
  }
}

function pathKey(path: readonly PathSeg[]): string {
  return JSON.stringify(path);
}

function locateIn(
  positions: Map<string, SourcePos>,
  path: readonly PathSeg[],
): SourcePos | undefined {
  for (let n = path.length; n >= 0; n--) {
    const pos = positions.get(pathKey(path.slice(0, n)));
    if (pos) return pos;
  }
  return undefined;
}

/** A recursive-descent JSON parser (RFC 8259) that records where each value starts. */
class JsonParser {
  private i = 0;
  private readonly lines: LineIndex;
  readonly positions = new Map<string, SourcePos>();

  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {
    this.lines = new LineIndex(text);
    if (text.charCodeAt(0) === 0xfeff) this.i = 1;
  }

  parseDocument(): unknown {
    this.skipSpace();
    const value = this.parseValue([]);
    this.skipSpace();
    if (this.i < this.text.length) {
      this.fail(`expected end of file after the JSON value, found ${this.found()}`);
    }
    return value;
  }

  private fail(message: string, at = this.i): never {
    const { line, column } = this.lines.pos(at);
    throw new ScenarioError(`${this.file}:${line}:${column}: ${message}`);
  }

  /** Describes what is at the cursor, for "expected X, found Y" messages. */
  private found(): string {
    if (this.i >= this.text.length) return 'end of file';
    const word = /^[A-Za-z0-9_.+-]+/.exec(this.text.slice(this.i, this.i + 20));
    if (word) return `'${word[0]}'`;
    return `'${this.text[this.i]}'`;
  }

  private skipSpace(): void {
    while (this.i < this.text.length) {
      const c = this.text[this.i];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') this.i++;
      else if (c === '/' && (this.text[this.i + 1] === '/' || this.text[this.i + 1] === '*')) {
        this.fail('comments are not allowed in JSON (use a .yaml file for comments)');
      } else break;
    }
  }

  private parseValue(path: PathSeg[]): unknown {
    this.positions.set(pathKey(path), this.lines.pos(this.i));
    const c = this.text[this.i];
    if ((c === '{' || c === '[') && path.length >= MAX_DEPTH) this.fail(TOO_DEEP);
    if (c === '{') return this.parseObject(path);
    if (c === '[') return this.parseArray(path);
    if (c === '"') return this.parseString();
    if (c === '-' || (c >= '0' && c <= '9')) return this.parseNumber();
    for (const [word, value] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (
        this.text.startsWith(word, this.i) &&
        !/[A-Za-z0-9_]/.test(this.text[this.i + word.length] ?? '')
      ) {
        this.i += word.length;
        return value;
      }
    }
    if (c === "'") this.fail("expected a value, found ''' (JSON strings use double quotes)");
    return this.fail(`expected a value, found ${this.found()}`);
  }

  private parseObject(path: PathSeg[]): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.i++;
    this.skipSpace();
    if (this.text[this.i] === '}') {
      this.i++;
      return out;
    }
    for (;;) {
      if (this.text[this.i] !== '"') {
        this.fail(`expected a property name in double quotes, found ${this.found()}`);
      }
      const keyAt = this.i;
      const key = this.parseString();
      if (Object.prototype.hasOwnProperty.call(out, key)) {
        this.fail(`duplicate key ${JSON.stringify(key)}`, keyAt);
      }
      this.skipSpace();
      if (this.text[this.i] !== ':') {
        this.fail(`expected ':' after property name, found ${this.found()}`);
      }
      this.i++;
      this.skipSpace();
      const value = this.parseValue([...path, key]);
      Object.defineProperty(out, key, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      this.skipSpace();
      const c = this.text[this.i];
      if (c === ',') {
        this.i++;
        this.skipSpace();
        if (this.text[this.i] === '}')
          this.fail(
            "expected a property name after ',', found '}' " +
              '(trailing commas are not allowed in JSON)',
          );
        continue;
      }
      if (c === '}') {
        this.i++;
        return out;
      }
      this.fail(`expected ',' or '}' after property value, found ${this.found()}`);
    }
  }

  private parseArray(path: PathSeg[]): unknown[] {
    const out: unknown[] = [];
    this.i++;
    this.skipSpace();
    if (this.text[this.i] === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      out.push(this.parseValue([...path, out.length]));
      this.skipSpace();
      const c = this.text[this.i];
      if (c === ',') {
        this.i++;
        this.skipSpace();
        if (this.text[this.i] === ']')
          this.fail(
            "expected a value after ',', found ']' (trailing commas are not allowed in JSON)",
          );
        continue;
      }
      if (c === ']') {
        this.i++;
        return out;
      }
      this.fail(`expected ',' or ']' after array element, found ${this.found()}`);
    }
  }

  private parseString(): string {
    const start = this.i;
    this.i++;
    let out = '';
    for (;;) {
      if (this.i >= this.text.length) this.fail('unterminated string', start);
      const c = this.text[this.i];
      if (c === '"') {
        this.i++;
        return out;
      }
      if (c === '\\') {
        const e = this.text[this.i + 1];
        const simple: Record<string, string> = {
          '"': '"',
          '\\': '\\',
          '/': '/',
          b: '\b',
          f: '\f',
          n: '\n',
          r: '\r',
          t: '\t',
        };
        if (e !== undefined && e in simple) {
          out += simple[e];
          this.i += 2;
        } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(this.text.slice(this.i + 2, this.i + 6))) {
          out += String.fromCharCode(parseInt(this.text.slice(this.i + 2, this.i + 6), 16));
          this.i += 6;
        } else {
          this.fail(`bad escape '\\${e ?? ''}' in string`);
        }
        continue;
      }
      if (c.charCodeAt(0) < 0x20) {
        this.fail(
          c === '\n'
            ? 'unterminated string (a JSON string cannot span lines; use \\n)'
            : 'control character in string',
        );
      }
      out += c;
      this.i++;
    }
  }

  private parseNumber(): number {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.text.slice(this.i));
    if (!m || /[A-Za-z0-9_.]/.test(this.text[this.i + m[0].length] ?? '')) {
      this.fail(`expected a value, found ${this.found()}`);
    }
    this.i += m[0].length;
    return Number(m[0]);
  }
}

function parseJson(text: string, file: string): ParsedText {
  const parser = new JsonParser(text, file);
  const value = parser.parseDocument();
  return { value, locate: (path) => locateIn(parser.positions, path) };
}

function parseYaml(text: string, file: string): ParsedText {
  const lineCounter = new LineCounter();
  const doc = parseYamlDocument(text, file, lineCounter);
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    const { line, col } = lineCounter.linePos(err.pos[0]);
    const message = err.message.charAt(0).toLowerCase() + err.message.slice(1);
    throw new ScenarioError(`${file}:${line}:${col}: ${message}`);
  }
  const locate = (path: readonly PathSeg[]): SourcePos | undefined => {
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) {
        const { line, col } = lineCounter.linePos(node.range[0]);
        return { line, column: col };
      }
    }
    return undefined;
  };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    throw new ScenarioError(`${file}: ${(e as Error).message}`);
  }
  // Aliases can nest a value deeper than the text does, or make it a cycle.
  const deepValue = tooDeep(value, (v) =>
    v !== null && typeof v === 'object'
      ? Object.entries(v).map(([k, x]): [PathSeg, unknown] => [Array.isArray(v) ? +k : k, x])
      : undefined,
  );
  if (deepValue !== undefined) {
    const where = locate(deepValue.path);
    const at = where ? `:${where.line}:${where.column}` : '';
    throw new ScenarioError(`${file}${at}: ${TOO_DEEP}`);
  }
  return { value, locate };
}

/** How deep the `yaml` parser's stack may get: a little more than one entry per level. */
const MAX_PARSER_STACK = 2 * MAX_DEPTH;

/**
 * The `yaml` package's `parseDocument`, with its parser's stack kept under `MAX_PARSER_STACK`.
 * The parser recurses once per entry of its stack (about a kilobyte of stack each) and, near
 * the end of the process's stack, can abort the process instead of throwing. Its stack grows
 * with the nesting of the text, and also, after some syntax errors, with every line that
 * follows (a list indented under a key that has a value already). Past the limit, parsing
 * stops there: the first syntax error before that point is the one reported, as usual, or, if
 * there is none, the nesting is.
 */
function parseYamlDocument(text: string, file: string, lineCounter: LineCounter): Document.Parsed {
  // logLevel 'error': the package would print its warnings (a collection used as a key, an
  // unknown tag) on stderr as Node process warnings; a key it had to stringify is reported
  // as an unknown key, like any other.
  const composer = new Composer({ uniqueKeys: true, logLevel: 'error' });
  const parser = new Parser(lineCounter.addNewLine);
  let stoppedAt: number | undefined;
  function* tokens() {
    lineCounter.addNewLine(0);
    for (const lexeme of new Lexer().lex(text)) {
      yield* parser.next(lexeme);
      if (parser.stack.length > MAX_PARSER_STACK) {
        stoppedAt = parser.offset;
        break;
      }
    }
    yield* parser.end();
  }
  // As parseDocument: the first document, and an error if there is another.
  let doc: Document.Parsed | undefined;
  for (const next of composer.compose(tokens(), true, text.length)) {
    if (doc === undefined) doc = next;
    else {
      const range: [number, number] = [next.range[0], next.range[1]];
      doc.errors.push(
        new YAMLParseError(
          range,
          'MULTIPLE_DOCS',
          'Source contains multiple documents; please use YAML.parseAllDocuments()',
        ),
      );
      break;
    }
  }
  if (stoppedAt !== undefined) {
    const at = stoppedAt;
    // Errors at the stop come from the text cut short there.
    doc!.errors = doc!.errors.filter((e) => e.pos[0] < at);
    if (doc!.errors.length === 0) {
      const { line, col } = lineCounter.linePos(at);
      throw new ScenarioError(`${file}:${line}:${col}: ${TOO_DEEP}`);
    }
  }
  return doc!;
}

/**
 * The first collection of a tree at a depth of `MAX_DEPTH` or more (the root is at depth 0),
 * with its path, found without recursion; undefined when there is none. `children` lists a
 * collection's children with their keys and gives undefined for anything else. A value shared
 * by several parents (a YAML alias) is walked again only when reached at a greater depth, so
 * a chain of aliases costs at most its length times `MAX_DEPTH` steps, and a cycle is too
 * deep.
 */
function tooDeep(
  root: unknown,
  children: (v: unknown) => [PathSeg, unknown][] | undefined,
): { value: unknown; path: PathSeg[] } | undefined {
  const seen = new Map<unknown, number>();
  const stack: { value: unknown; path: PathSeg[] }[] = [{ value: root, path: [] }];
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    const kids = children(value);
    if (kids === undefined || (seen.get(value) ?? -1) >= path.length) continue;
    if (path.length >= MAX_DEPTH) return { value, path };
    seen.set(value, path.length);
    for (const [key, kid] of kids) stack.push({ value: kid, path: [...path, key] });
  }
  return undefined;
}
