// The official OpenAI Node SDK (npm `openai`, pinned in package-lock.json) as the client of a real
// `tide serve`: one base URL (the gateway's /v1), two models on two endpoints of demo-model
// replicas that start at zero, client keys on. Lists both models while both endpoints are at
// zero, streams from each, gets the SDK's AuthenticationError (401) without a key or with a wrong
// one and NotFoundError (404) for a third model, with tide's error body parsed into the error's
// message, code, type and param; a key revoked through the admin API is refused within one
// second; the key is never in clear in tide's log or state file.
//
// Env: TIDE_BIN (the tide binary). Exits 77 (ctest's SKIP) when the SDK is not installed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { eventually as pollUntil, startServe } from '../tide_process.mjs';

let OpenAI;
try {
  ({ default: OpenAI } = await import('openai'));
} catch (e) {
  console.log(`the openai SDK is not installed (npm ci in tests/openai_sdk): skipped\n${e.message}`);
  process.exit(77);
}

const TIDE_BIN = process.env.TIDE_BIN;
assert.ok(TIDE_BIN, 'set TIDE_BIN to the tide binary');
const ADMIN_TOKEN = 'sdk-test-admin-token-0123456789';
const MODELS = { chat: 'llama-3-8b-instruct', code: 'qwen/coder:7b' };

// Polls `cond` every 20 ms (a revoked key is checked against a one-second bound).
const eventually = (cond, seconds, what) => pollUntil(cond, seconds, what, 20);

function config(dir) {
  const endpoint = (name, model) => `
  - name: ${name}
    models: ["${model}"]
    queue: {max_length: 100, timeout: 30s}
    groups:
      - name: local
        min_replicas: 0
        max_replicas: 1
        concurrency: 4
        provisioner:
          kind: local
          command: ["{tide}", demo-model, --port, "{port}", --load-time, 300ms, --concurrency, "4",
                    --service, "fixed:100ms", --token-rate, "40", --model, "${model}"]
          ready: {path: /health, interval: 50ms}
        scaling: {policy: queue, queue_size: 4, idle_timeout: 60s, tick: 100ms}`;
  return `server: {listen: 127.0.0.1:0, api: 127.0.0.1:0, api_token: ${ADMIN_TOKEN}, client_auth: keys}
state: {path: "${join(dir, 'state.db')}", sample_interval: 200ms}
endpoints:${endpoint('chat', MODELS.chat)}${endpoint('code', MODELS.code)}
`;
}

// `tide serve` on free ports; resolves to {gateway, api, dir, log(), stop()}.
const startTide = () => startServe(TIDE_BIN, 'tide-sdk-', config);

async function admin(method, path) {
  const r = await fetch(`${tide.api}${path}`, { method, headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  return { status: r.status, body: await r.json() };
}

// Every group's {ready, starting} of every endpoint, from the admin API.
async function replicas() {
  const { body } = await admin('GET', '/v1/endpoints');
  return body.endpoints.flatMap((e) => e.groups.map((g) => ({ endpoint: e.name, ready: g.ready, starting: g.starting })));
}

// Rejects unless `promise` rejects with an instance of `ErrorClass`; resolves to that error.
async function refusal(promise, ErrorClass) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof ErrorClass, `expected ${ErrorClass.name}, got ${e?.constructor?.name}: ${e?.message}`);
    return e;
  }
  assert.fail(`expected ${ErrorClass.name}, the request succeeded`);
}

let tide;
let key;
let client;
before(async () => {
  tide = await startTide();
  // The key as a user makes it: `tide keys add`, which prints it once on stdout.
  const added = spawnSync(TIDE_BIN, ['keys', 'add', 'sdk', '--api', tide.api, '--token', ADMIN_TOKEN], {
    encoding: 'utf8',
  });
  assert.equal(added.status, 0, `${added.stdout}${added.stderr}`);
  key = added.stdout.split('\n').find((l) => l.startsWith('sk-tide-'));
  assert.ok(key, added.stdout);
  client = new OpenAI({ baseURL: `${tide.gateway}/v1`, apiKey: key, maxRetries: 0, timeout: 30000 });
});
after(async () => {
  const exit = await tide?.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, `tide serve did not stop cleanly:\n${tide?.log()}`);
});

test('models.list() lists both models while both endpoints are at zero replicas', async () => {
  const zero = [
    { endpoint: 'chat', ready: 0, starting: 0 },
    { endpoint: 'code', ready: 0, starting: 0 },
  ];
  assert.deepEqual(await replicas(), zero);
  const ids = [];
  for await (const model of client.models.list()) {
    assert.equal(model.object, 'model');
    ids.push(model.id);
  }
  assert.deepEqual(ids.sort(), [MODELS.chat, MODELS.code].sort());
  const one = await client.models.retrieve(MODELS.code);
  assert.equal(one.id, MODELS.code);
  // Listing started nothing.
  assert.deepEqual(await replicas(), zero);
});

test('streams a chat completion from each model, in several chunks, from its own endpoint', async () => {
  for (const [endpoint, model] of Object.entries(MODELS)) {
    const { data: stream, response } = await client.chat.completions
      .create({ model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 12, stream: true })
      .withResponse();
    assert.ok(response.headers.get('tide-replica').startsWith(`${endpoint}/`), response.headers.get('tide-replica'));
    const pieces = [];
    const times = [];
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      const content = chunk.choices[0]?.delta?.content;
      if (content) {
        pieces.push(content);
        times.push(performance.now());
      }
    }
    // 12 tokens at 40/s: a dozen chunks spread over ~0.3 s, not one lump at the end.
    assert.ok(pieces.length >= 6, `${model}: ${pieces.length} chunks with content`);
    assert.ok(times.at(-1) - times[0] > 150, `${model}: chunks within ${times.at(-1) - times[0]} ms`);
    assert.match(pieces.join(''), /\S/);
  }
});

test('no key or a wrong key: AuthenticationError with tide\'s message and code', async () => {
  // The SDK always sends its key; a null header removes it, as a client without a key would.
  const keyless = new OpenAI({
    baseURL: `${tide.gateway}/v1`,
    apiKey: 'unused',
    defaultHeaders: { Authorization: null },
    maxRetries: 0,
  });
  const wrong = new OpenAI({ baseURL: `${tide.gateway}/v1`, apiKey: `${key}x`, maxRetries: 0 });
  for (const c of [keyless, wrong]) {
    for (const call of [
      () => c.models.list(),
      () => c.chat.completions.create({ model: MODELS.chat, messages: [{ role: 'user', content: 'hi' }] }),
    ]) {
      const e = await refusal(call(), OpenAI.AuthenticationError);
      assert.equal(e.status, 401);
      assert.equal(e.code, 'invalid_api_key');
      assert.equal(e.type, 'invalid_request_error');
      assert.match(e.message, /^401 \S/);
      assert.ok(!e.message.includes('{'), `the message is tide's text, not a JSON dump: ${e.message}`);
    }
  }
});

test('a third model: NotFoundError naming the models there are', async () => {
  const e = await refusal(
    client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    OpenAI.NotFoundError,
  );
  assert.equal(e.status, 404);
  assert.equal(e.code, 'model_not_found');
  assert.equal(e.param, 'model');
  assert.equal(e.type, 'invalid_request_error');
  assert.equal(e.message, `404 The model \`gpt-4o\` does not exist; models: ${MODELS.chat}, ${MODELS.code}`);
  await refusal(client.models.retrieve('gpt-4o'), OpenAI.NotFoundError);
});

test('a key revoked through the admin API is refused within one second, never in clear', async () => {
  assert.equal((await client.models.list()).data.length, 2);
  const revoked = Date.now();
  const { status } = await admin('DELETE', '/v1/keys/sdk');
  assert.equal(status, 200);
  await eventually(
    () => refusal(client.models.list(), OpenAI.AuthenticationError).then(() => true, () => false),
    1,
    'the revoked key to be refused',
  );
  assert.ok(Date.now() - revoked < 1000);
  // Neither tide's log nor its state file (nor WAL) holds the key or its random part.
  let seen = tide.log() + JSON.stringify((await admin('GET', '/v1/keys')).body);
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      seen += readFileSync(join(tide.dir, `state.db${suffix}`), 'latin1');
    } catch {
      // no such file: nothing to search
    }
  }
  assert.ok(!seen.includes(key), 'the key in clear');
  assert.ok(!seen.includes(key.slice(8, 24)), 'part of the key in clear');
});
