// Shared by the node --test files: the shim's address and the npm clients, loaded from the
// node_modules that hack/clients.sh installed outside the checkout (RCE_CLIENTS_NODE_MODULES).
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import assert from 'node:assert/strict';

export const API = (process.env.RCE_API || 'http://127.0.0.1:8080').replace(/\/$/, '');
const host = new URL(API).hostname;
// Only this machine: the clients default to the public emkc.org.
assert.ok(['127.0.0.1', 'localhost', '[::1]'].includes(host), `RCE_API=${API} is not local`);

const modules = process.env.RCE_CLIENTS_NODE_MODULES;
assert.ok(modules, 'RCE_CLIENTS_NODE_MODULES is not set (run the tests with hack/clients.sh)');
const require = createRequire(`${modules}/`);

/** Options of every test: a client with no timeout of its own cannot hang the run. */
export const T = { timeout: 120_000 };

/** Import an installed package by name (its main entry). */
export async function load(name) {
  return import(pathToFileURL(require.resolve(name)).href);
}

/** Fail, not skip, when the shim does not answer. */
export async function shimAnswers() {
  const res = await fetch(`${API}/about`).catch((e) => assert.fail(`the shim does not answer at ${API}: ${e}`));
  assert.equal(res.status, 200, `GET ${API}/about answered ${res.status}`);
}
