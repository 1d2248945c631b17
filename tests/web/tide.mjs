// Helpers for the browser tests and the demo screenshot: a real `tide serve` with demo-model
// replicas, Debian's chromium through playwright-core (never a downloaded browser).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

// Polls `cond` (sync or async) every 100 ms until it is truthy or `seconds` pass.
export async function eventually(cond, seconds, what = 'condition') {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Starts `tide serve` on free ports with a config of two priced groups of demo-model replicas
// (split 50/50), scaling from zero. History is sampled every 5 s (the default), so a short burst
// leaves its latency in one or two samples, as a user's first run does. Resolves to {gateway, api, stop(), log()}.
export async function startTide(tideBin, extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), 'tide-web-'));
  const group = (name, price) => `
      - name: ${name}
        min_replicas: 0
        max_replicas: 2
        concurrency: 2
        price: ${price}
        provisioner:
          kind: local
          command: ["{tide}", demo-model, --port, "{port}", --load-time, 1s, --concurrency, "2",
                    --service, "fixed:700ms", --model, web-test]
          ready: {path: /health, interval: 50ms}
        scaling: {policy: queue, queue_size: 2, idle_timeout: 3s, tick: 200ms}`;
  writeFileSync(
    join(dir, 'tide.yaml'),
    `server: {listen: 127.0.0.1:0, api: 127.0.0.1:0, api_token: web-test-token-0123456789, public_read: true}
state: {path: "${join(dir, 'state.db')}", sample_interval: 5s}
endpoints:
  - name: chat
    slo: {max_wait: 2s}
    queue: {max_length: 1000, timeout: 30s}
    routing: {mode: split, weights: {a100: 50, l4: 50}}
    groups:${group('a100', 2.5)}${group('l4', 0.8)}
`,
  );
  const proc = spawn(tideBin, ['serve', '--config', join(dir, 'tide.yaml'), '--stop-grace', '2s', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout.on('data', (d) => (log += d));
  proc.stderr.on('data', (d) => (log += d));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const m = await eventually(
    () => /gateway on http:\/\/127\.0\.0\.1:(\d+) , API on http:\/\/127\.0\.0\.1:(\d+)/.exec(log),
    15,
    'tide serve to listen',
  ).catch((e) => {
    proc.kill('SIGKILL');
    throw new Error(`${e.message}\n${log}`);
  });
  return {
    gateway: `http://127.0.0.1:${m[1]}`,
    api: `http://127.0.0.1:${m[2]}`,
    log: () => log,
    async stop() {
      proc.kill('SIGTERM');
      const result = await Promise.race([exited, new Promise((r) => setTimeout(() => r(null), 15000))]);
      if (result === null) proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      return result;
    },
  };
}

// Sends `n` completions, one every `gapMs`, every other one streamed (`stream: true`, server-sent
// events) when `streamHalf`; resolves to their statuses.
export async function sendRequests(gateway, n, gapMs, streamHalf = true) {
  const pending = [];
  for (let i = 0; i < n; i++) {
    pending.push(
      fetch(`${gateway}/chat/v1/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ prompt: `hello ${i}`, max_tokens: 8, stream: streamHalf && i % 2 === 1 }),
      }).then(async (r) => {
        await r.text();
        return r.status;
      }),
    );
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return Promise.all(pending);
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}
