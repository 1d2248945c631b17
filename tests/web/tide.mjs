// Helpers for the browser tests and the demo screenshot: a real `tide serve` with demo-model
// replicas, Debian's chromium through playwright-core (never a downloaded browser).
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { eventually, startServe } from '../tide_process.mjs';

export { eventually };

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

// Starts `tide serve` on free ports with a config of two priced groups of demo-model replicas
// (split 50/50), scaling from zero. History is sampled every 5 s (the default), so a short burst
// leaves its latency in one or two samples, as a user's first run does. Resolves to {gateway, api, stop(), log()}.
export async function startTide(tideBin, extraArgs = []) {
  return startServe(tideBin, 'tide-web-', webConfig, extraArgs);
}

function webConfig(dir) {
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
  return `server: {listen: 127.0.0.1:0, api: 127.0.0.1:0, api_token: web-test-token-0123456789, public_read: true}
state: {path: "${join(dir, 'state.db')}", sample_interval: 5s}
endpoints:
  - name: chat
    slo: {max_wait: 2s}
    queue: {max_length: 1000, timeout: 30s}
    routing: {mode: split, weights: {a100: 50, l4: 50}}
    groups:${group('a100', 2.5)}${group('l4', 0.8)}
`;
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
