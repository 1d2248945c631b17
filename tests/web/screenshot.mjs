// Takes a screenshot of a running dashboard once it has shown `seconds` of live data (the
// README demo uses it for docs/dashboard.png). Touches READY_FILE, if given, once the page shows
// its charts, so that the caller can start its load then.
// Usage: [TIDE_API_TOKEN=T] node screenshot.mjs URL OUT.png [seconds] [READY_FILE]
import { writeFileSync } from 'node:fs';
import { launchBrowser } from './tide.mjs';

const [url, out, seconds = '10', ready] = process.argv.slice(2);
if (!url || !out) {
  console.error('usage: node screenshot.mjs URL OUT.png [seconds] [READY_FILE]');
  process.exit(2);
}
const browser = await launchBrowser();
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
  // The API token (TIDE_API_TOKEN), as if the user had typed it into the page once.
  const token = process.env.TIDE_API_TOKEN;
  if (token) await page.addInitScript((t) => localStorage.setItem('tide.token', t), token);
  await page.goto(url);
  await page.waitForSelector('.chart[data-kind="replicas"]', { timeout: 30000 });
  if (ready) writeFileSync(ready, 'ready\n');
  await page.waitForTimeout(Number(seconds) * 1000);
  await page.screenshot({ path: out, fullPage: true });
  console.log(`dashboard screenshot: ${out}`);
} finally {
  await browser.close();
}
