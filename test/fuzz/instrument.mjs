// Edge-coverage instrumentation of the built loader for the fuzz engine (fuzz.mjs).
//
// Taking V8's block coverage through the inspector after every execution costs milliseconds
// (every function of every script, as JSON), more than most executions themselves. Instead,
// each file of dist/src/ is copied to dist-fuzz/src/ with a counter bumped on every branch:
// function entry, both arms of `if`, `?:`, `&&`, `||` and `??`, loop bodies, `case` and
// `default` clauses, `catch` blocks. The counters are one Uint32Array shared by every file
// (`globalThis.__dvrlabCov`), so reading an execution's coverage is one pass over an array.
//
// dist-fuzz/src/ sits at the same depth as dist/src/, so the relative paths the code uses to
// reach the native addon (`../../native/`) still resolve.
//
//   import { instrument } from './instrument.mjs';
//   const { edges, dir } = instrument(root);   // before the first import of dist-fuzz/src/
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const COUNTERS = '__dvrlabCov';

/** Every .js file under `dir`, relative to it. */
function jsFiles(dir, prefix = '') {
  const out = [];
  for (const e of fs.readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = path.join(prefix, e.name);
    if (e.isDirectory()) out.push(...jsFiles(dir, rel));
    else if (e.name.endsWith('.js')) out.push(rel);
  }
  return out.sort();
}

/**
 * Gives `text` with a counter on every branch, numbered from `first`; and the number of
 * counters used.
 */
export function instrumentText(text, fileName, first) {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  const inserts = []; // [position, 0 = closes / 1 = opens, order, text]
  let next = first;
  let order = 0;
  const bump = () => `${COUNTERS}[${next++}]++`;
  const open = (pos, s) => inserts.push([pos, 1, order++, s]);
  const close = (pos, s) => inserts.push([pos, 0, order++, s]);
  /** A statement made a block that first counts. */
  const wrapStatement = (st) => {
    open(st.getStart(sf), `{${bump()};`);
    close(st.end, '}');
  };
  /** An expression made `(count, expression)`. */
  const wrapExpression = (ex) => {
    open(ex.getStart(sf), `(${bump()},`);
    close(ex.end, ')');
  };
  const functionBody = (fn) => {
    const body = fn.body;
    if (body === undefined) return;
    if (ts.isBlock(body)) open(body.getStart(sf) + 1, `${bump()};`);
    else wrapExpression(body);
  };

  const visit = (node) => {
    if (ts.isFunctionLike(node)) functionBody(node);
    if (ts.isIfStatement(node)) {
      // The missing `else` closes the whole statement: registered first, it goes last.
      if (node.elseStatement === undefined) close(node.end, ` else{${bump()};}`);
      wrapStatement(node.thenStatement);
      if (node.elseStatement !== undefined) wrapStatement(node.elseStatement);
    } else if (
      ts.isForStatement(node) ||
      ts.isForInStatement(node) ||
      ts.isForOfStatement(node) ||
      ts.isWhileStatement(node) ||
      ts.isDoStatement(node)
    ) {
      wrapStatement(node.statement);
    } else if (ts.isCaseClause(node) || ts.isDefaultClause(node)) {
      open(node.statements.pos, `${bump()};`);
    } else if (ts.isCatchClause(node)) {
      open(node.block.getStart(sf) + 1, `${bump()};`);
    } else if (ts.isConditionalExpression(node)) {
      wrapExpression(node.whenTrue);
      wrapExpression(node.whenFalse);
    } else if (
      ts.isBinaryExpression(node) &&
      (node.operatorToken.kind === ts.SyntaxKind.AmpersandAmpersandToken ||
        node.operatorToken.kind === ts.SyntaxKind.BarBarToken ||
        node.operatorToken.kind === ts.SyntaxKind.QuestionQuestionToken)
    ) {
      wrapExpression(node.right);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);

  // At one position: what closes comes before what opens; inner closes before outer ones
  // (visited later), outer opens before inner ones (visited earlier).
  inserts.sort((a, b) => a[0] - b[0] || a[1] - b[1] || (a[1] === 0 ? b[2] - a[2] : a[2] - b[2]));
  let out = `const ${COUNTERS} = globalThis.${COUNTERS};`;
  let at = 0;
  for (const [pos, , , s] of inserts) {
    out += text.slice(at, pos) + s;
    at = pos;
  }
  out += text.slice(at);
  return { text: out, count: next - first };
}

/**
 * Writes the instrumented copy of `root/dist/src` to `root/dist-fuzz/src` (when it is older
 * than the build) and gives the number of counters and the copy's directory. Every process
 * that runs the copy needs `globalThis.__dvrlabCov`, a Uint32Array of at least `edges`.
 */
export function instrument(root) {
  const src = path.join(root, 'dist/src');
  const dst = path.join(root, 'dist-fuzz/src');
  const files = jsFiles(src);
  let edges = 0;
  for (const rel of files) {
    const from = path.join(src, rel);
    const to = path.join(dst, rel);
    const text = fs.readFileSync(from, 'utf8');
    const out = instrumentText(text, rel, edges);
    edges += out.count;
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.writeFileSync(to, out.text);
  }
  // The copy is an ES module tree like dist/src (package.json's "type" is found above it).
  return { edges, dir: dst };
}

/** `globalThis.__dvrlabCov`, made once per process. */
export function counters(edges) {
  globalThis[COUNTERS] ??= new Uint32Array(edges);
  return globalThis[COUNTERS];
}
