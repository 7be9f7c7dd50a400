// npm `piston-client` 1.0.2 (dthree/node-piston), unchanged, against rce's Piston v2 surface:
// piston({ server }) → runtimes(), execute(language, code, config). For a server other than
// emkc.org it uses /api/v2/runtimes and /api/v2/execute; it POSTs JSON.stringify(body) through
// node-fetch without a Content-Type (so the body arrives as text/plain, which upstream's
// older API parsed and rce keeps accepting), takes the newest version of the runtime whose
// `language` equals the name given, and sends args ["1", "2", "3"] unless told otherwise.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { API, T, load, shimAnswers } from './clients.mjs';

let client;
before(async () => {
  await shimAnswers();
  const { piston } = await load('piston-client');
  client = piston({ server: API });
}, T);

test('runtimes lists upstream names with versions and aliases', T, async () => {
  const runtimes = await client.runtimes();
  assert.ok(Array.isArray(runtimes), JSON.stringify(runtimes));
  const names = runtimes.map((r) => r.language);
  for (const name of ['python', 'javascript', 'c', 'c++', 'bash']) {
    assert.ok(names.includes(name), `${name} missing from ${names}`);
  }
  for (const r of runtimes) {
    assert.match(r.version, /^\d+\.\d+\.\d+$/, `${r.language}: ${r.version}`);
    assert.ok(Array.isArray(r.aliases));
  }
});

test('execute: the README example', T, async () => {
  const result = await client.execute('python', 'print("Hello World!")');
  assert.equal(result.language, 'python');
  const py = (await client.runtimes()).find((r) => r.language === 'python');
  assert.equal(result.version, py.version);
  assert.equal(result.run.stdout, 'Hello World!\n');
  assert.equal(result.run.stderr, '');
  assert.equal(result.run.output, 'Hello World!\n');
  assert.equal(result.run.code, 0);
  assert.equal(result.run.signal, null);
});

test('execute passes the default args and the given stdin', T, async () => {
  const result = await client.execute('javascript', [
    'const lines = require("fs").readFileSync(0, "utf8");',
    'console.log(JSON.stringify([process.argv.slice(2), lines]));',
  ].join('\n'), { stdin: 'in put' });
  assert.equal(result.run.code, 0, JSON.stringify(result));
  // Upstream adds the final newline stdin lacks.
  assert.deepEqual(JSON.parse(result.run.stdout), [['1', '2', '3'], 'in put\n']);
});

test('execute with files, args and a compiled language', T, async () => {
  const result = await client.execute({
    language: 'c++',
    files: [{ name: 'main.cpp', content: '#include <iostream>\nint main(int c, char** v) { std::cout << c - 1 << v[1] << "\\n"; }\n' }],
    args: ['x'],
  });
  assert.equal(result.language, 'c++');
  assert.equal(result.compile.code, 0, JSON.stringify(result.compile));
  assert.equal(result.run.output, '1x\n');
});

test('a compile error still has run.output', T, async () => {
  const result = await client.execute('c', 'int main( {');
  assert.notEqual(result.compile.code, 0);
  assert.match(result.run.output, /error/);
  assert.deepEqual(result.run, result.compile);
});

test('stderr and a non-zero exit code', T, async () => {
  const result = await client.execute('bash', 'echo out; echo err >&2; exit 4');
  assert.equal(result.run.stdout, 'out\n');
  assert.equal(result.run.stderr, 'err\n');
  assert.equal(result.run.output, 'out\nerr\n');
  assert.equal(result.run.code, 4);
});

test('an unknown language answers as upstream', T, async () => {
  // No runtime matches, so the client sends no version; upstream answers 400
  // {"message": "<lang>-<version> runtime is unknown"}.
  const result = await client.execute('cobolscript', 'x', { version: '1.0.0' });
  assert.deepEqual(result, { message: 'cobolscript-1.0.0 runtime is unknown' });
});
