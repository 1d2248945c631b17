// What the node tests share (tests/web's browser tests, tests/openai_sdk's SDK test): polling
// with a deadline, and a real `tide serve` started on a config the test writes. No dependencies,
// so each test folder's own npm packages stay its own.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Polls `cond` (sync or async) every `pollMs` until it is truthy or `seconds` pass.
export async function eventually(cond, seconds, what = 'condition', pollMs = 100) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

// `tide serve` on the config `configOf(dir)` returns (written to a new temporary directory
// named with `prefix`), listening on the ports it chose; resolves to {gateway, api, dir, log(),
// stop()} once it listens. stop() sends SIGTERM (SIGKILL after 15 s), removes the directory and
// resolves to the exit {code, signal} (null when it had to be killed).
export async function startServe(tideBin, prefix, configOf, extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  writeFileSync(join(dir, 'tide.yaml'), configOf(dir));
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
    dir,
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
