// npm `piston-api-client` 2.0.1 (aboqasem), unchanged, against rce's Piston v2 surface:
// PistonClient (fetch) and NodePistonClient (node's http module), each with
// { server } → runtimes() and execute({ language, version: '*', files, args, stdin }).
// Results are { success, data } (or { success: false, error }).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { API, T, load, shimAnswers } from './clients.mjs';

let lib;
before(async () => {
  await shimAnswers();
  lib = await load('piston-api-client');
}, T);

for (const kind of ['PistonClient', 'NodePistonClient']) {
  describe(kind, () => {
    const client = () => new lib[kind]({ server: API });

    test('runtimes', T, async () => {
      const runtimes = await client().runtimes();
      assert.equal(runtimes.success, true, String(runtimes.error));
      const ts = runtimes.data.find((r) => r.language === 'typescript');
      assert.ok(ts, JSON.stringify(runtimes.data.map((r) => r.language)));
      assert.match(ts.version, /^\d+\.\d+\.\d+$/);
      assert.ok(runtimes.data.find((r) => r.language === 'javascript' && r.runtime === 'node'));
    });

    test('execute: the README example', T, async () => {
      const result = await client().execute({
        language: 'node-js',
        version: '*',
        files: [{ content: 'console.log(process.argv.slice(2))' }],
        args: ['Hello', 'World'],
      });
      assert.equal(result.success, true, String(result.error));
      assert.equal(result.data.language, 'javascript');
      assert.equal(result.data.run.stdout, "[ 'Hello', 'World' ]\n");
      assert.equal(result.data.run.output, "[ 'Hello', 'World' ]\n");
      assert.equal(result.data.run.code, 0);
      assert.equal(result.data.run.signal, null);
      assert.equal(result.data.compile, undefined);
    });

    test('execute: typescript through an alias, stdin', T, async () => {
      const result = await client().execute({
        language: 'ts',
        version: '*',
        files: [{ name: 'main.ts', content: 'const s: string = require("fs").readFileSync(0, "utf8"); console.log(s.trim().toUpperCase());' }],
        stdin: 'shout',
      });
      assert.equal(result.success, true, String(result.error));
      assert.equal(result.data.language, 'typescript');
      assert.equal(result.data.run.stdout, 'SHOUT\n', JSON.stringify(result.data));
    });

    test('execute: compile stage figures', T, async () => {
      const result = await client().execute({
        language: 'rust',
        version: '*',
        files: [{ name: 'main.rs', content: 'fn main() { println!("{}", 6 * 7); }' }],
      });
      assert.equal(result.success, true, String(result.error));
      const { compile, run } = result.data;
      assert.equal(compile.code, 0, JSON.stringify(compile));
      for (const k of ['cpu_time', 'wall_time', 'memory']) {
        assert.equal(typeof compile[k], 'number', `compile.${k}: ${JSON.stringify(compile)}`);
      }
      assert.equal(run.stdout, '42\n');
    });

    test('execute: unknown runtime', T, async () => {
      const result = await client().execute({ language: 'nope', version: '*', files: [{ content: '' }] });
      assert.equal(result.success, true); // the client resolves any JSON body
      assert.deepEqual(result.data, { message: 'nope-* runtime is unknown' });
    });
  });
}
