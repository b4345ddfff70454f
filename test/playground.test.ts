// The browser playground end to end, in headless Chromium (Debian's `chromium`, driven by
// playwright-core; WebGPU on SwiftShader with the Chromium tier's flags): the page is built once
// with Vite and served by `vite preview` from 127.0.0.1, as `npm run playground` serves it. A
// pattern with a deliberate DSL error shows the CLI's message at its line and column; fixed, the
// matrix's SVG cells equal `dcagen explain --json`; DCA f32 runs on the page's WebGPU adapter
// within 2e-4 of the float64 reference; the downloaded CUDA kernel equals `dcagen emit`'s.
// Set DCAGEN_PLAYGROUND_SCREENSHOT=docs/playground.png to write the screenshot the README shows.

import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { build, preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findChromium, WEBGPU_FLAGS } from '../runtime/browser/chromium.js';
import { ensureBuilt } from './helpers/built.js';
import { dcagen, ROOT } from './helpers/cli.js';

const CONFIG = join(ROOT, 'playground', 'vite.config.ts');
const STEP_TIMEOUT_MS = 60_000;
const RUN_TIMEOUT_MS = 240_000;

/** The README's example pattern, with `p.window / 2` (not integer division: a DSL error) or fixed. */
function capped(farQuery: string): string {
  return [
    "import { definePattern, distanceAtLeast, distanceBelow } from 'dcagen';",
    '',
    'export default definePattern({',
    "  name: 'capped',",
    "  summary: 'exact distances below W, everything farther seen at distance W',",
    "  params: { window: { description: 'W', min: 1 } },",
    '  keyPosition: (j) => j,',
    '  regions: [',
    "    { name: 'near', when: distanceBelow((p) => p.window), mask: 'causal', queryPosition: (i) => i },",
    "    { name: 'far', when: distanceAtLeast((p) => p.window), mask: 'full',",
    `      queryPosition: (_i, p) => ${farQuery}, keyPosition: () => 0 },`,
    '  ],',
    '});',
    '',
  ].join('\n');
}

let work = '';
let server: PreviewServer | undefined;
let browser: Browser | undefined;
let page: Page;

/** Replaces the editor's whole text, as typing would (CodeMirror sees ordinary input). */
async function typePattern(text: string): Promise<void> {
  await page.click('.cm-content');
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

async function setInput(selector: string, value: string | number): Promise<void> {
  await page.fill(selector, String(value));
}

describe('the browser playground in headless Chromium', () => {
  beforeAll(async () => {
    ensureBuilt(); // the CLI the page is compared with runs from dist/
    work = await mkdtemp(join(tmpdir(), 'dcagen-playground-'));
    const outDir = join(work, 'site');
    const started = Date.now();
    await build({ configFile: CONFIG, logLevel: 'error', build: { outDir, emptyOutDir: true } });
    server = await preview({ configFile: CONFIG, logLevel: 'error', build: { outDir }, preview: { port: 0, host: '127.0.0.1', strictPort: false } });
    console.log(`playground built and served in ${((Date.now() - started) / 1000).toFixed(1)} s at ${server.resolvedUrls?.local[0]}`);
    const xdg = join(work, 'xdg');
    await mkdir(xdg, { mode: 0o700 });
    browser = await chromium.launch({
      executablePath: findChromium(),
      headless: true,
      // Playwright passes its own headless flag.
      args: WEBGPU_FLAGS.filter((f) => !f.startsWith('--headless')),
      env: { ...process.env, XDG_RUNTIME_DIR: xdg },
    });
    page = await browser.newPage({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true });
    page.on('pageerror', (error) => console.log(`page error: ${error.message}`));
    await page.goto(server.resolvedUrls!.local[0]!);
    await page.waitForSelector('body[data-ready="true"]', { timeout: STEP_TIMEOUT_MS });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (work !== '') await rm(work, { recursive: true, force: true });
  });

  it('shows a DSL error at its line and column, with the message the CLI prints', { timeout: STEP_TIMEOUT_MS }, async () => {
    const broken = capped('p.window / 2');
    await typePattern(broken);
    await page.waitForSelector('body[data-state="error"]', { timeout: STEP_TIMEOUT_MS });
    const message = await page.textContent('#diagnostic');
    // The same file through the CLI: the same one-line message.
    const dir = join(work, 'broken');
    await mkdir(dir);
    await writeFile(join(dir, 'pattern.ts'), broken);
    const cli = await dcagen(['explain', '--pattern-file', 'pattern.ts', '--window', '4', '--seq-len', '10'], dir);
    expect(cli.exitCode).toBe(2);
    expect(cli.stderr.trim()).toBe(`dcagen explain: ${message}`);
    expect(message).toMatch(/^pattern\.ts:11:33 \(pattern capped, region far, queryPosition\): division must be written Math\.floor\(a \/ b\)/);
    // The editor underlines it there: line 11, starting at column 33 (`p.window / 2`).
    // (Browser-side code as strings: the tests' TypeScript has no DOM library.)
    const marked = await page.evaluate(`(() => {
      const range = document.querySelector('.cm-lintRange-error');
      const line = range?.closest('.cm-line');
      const lines = [...document.querySelectorAll('.cm-content .cm-line')];
      return { text: range?.textContent ?? null, line: line ? lines.indexOf(line) + 1 : -1 };
    })()`);
    expect(marked).toEqual({ text: 'p.window', line: 11 });
  });

  it('fixed, draws the matrix: every SVG cell equals dcagen explain --json', { timeout: STEP_TIMEOUT_MS }, async () => {
    const fixed = capped('p.window');
    await typePattern(fixed);
    await page.waitForSelector('#param-window', { timeout: STEP_TIMEOUT_MS });
    await setInput('#param-window', 4);
    await setInput('#size', 10);
    await page.waitForFunction("document.body.dataset.state === 'ok' && document.querySelectorAll('#matrix rect.cell').length === 55", undefined, { timeout: STEP_TIMEOUT_MS });
    const cells = await page.$$eval('#matrix rect.cell', (rects) => rects.map((r) => ['i', 'j', 'region', 'query', 'key', 'relative'].map((a) => r.getAttribute(`data-${a}`))));
    const dir = join(work, 'fixed');
    await mkdir(dir);
    await writeFile(join(dir, 'pattern.ts'), fixed);
    const cli = await dcagen(['explain', '--pattern-file', 'pattern.ts', '--window', '4', '--seq-len', '10', '--json'], dir);
    expect(cli.stderr).toBe('');
    const m = JSON.parse(cli.stdout) as { relative: (number | null)[][]; region: (string | null)[][]; query: (number | null)[][]; key: (number | null)[][] };
    const expected: (string | null)[][] = [];
    for (let i = 0; i < 10; i++) {
      for (let j = 0; j <= i; j++) {
        if (m.region[i]![j] !== null) expected.push([i, j, m.region[i]![j], m.query[i]![j], m.key[i]![j], m.relative[i]![j]].map((v) => String(v)));
      }
    }
    expect(cells).toEqual(expected);
    // Hover names the cell.
    await page.hover('#matrix rect.cell[data-i="9"][data-j="2"]');
    expect(await page.textContent('#hover')).toBe('i = 9, j = 2: query position 4, key position 0 (distance 4), region far');
  });

  it('offers every built-in pattern as an example that compiles and draws', { timeout: STEP_TIMEOUT_MS }, async () => {
    const names = await page.$$eval('#example option', (options) => options.map((o) => o.getAttribute('value')));
    expect(names).toEqual(['causal', 'dca', 'dca-paper', 'self-extend', 'rerope', 'sliding-window']);
    for (const name of names) {
      await page.selectOption('#example', name!);
      await page.waitForFunction(`document.body.dataset.state === 'ok' && document.querySelector('#matrix title')?.textContent.startsWith(${JSON.stringify(`${name}:`)})`, undefined, { timeout: STEP_TIMEOUT_MS });
    }
  });

  it('runs DCA f32 on the page\'s WebGPU adapter: max error ≤ 2e-4 against the float64 reference, and times fused vs causal vs three-pass', { timeout: RUN_TIMEOUT_MS }, async () => {
    await page.selectOption('#example', 'dca');
    await page.waitForSelector('#param-chunkSize', { timeout: STEP_TIMEOUT_MS });
    await setInput('#size', 24);
    for (const [id, value] of [['batch', 1], ['queries', 40], ['keys', 48], ['query-heads', 2], ['key-heads', 1], ['head-dim', 32], ['seed', 7]] as const) await setInput(`#${id}`, value);
    await page.selectOption('#dtype', 'f32');
    await page.waitForFunction("document.body.dataset.state === 'ok'", undefined, { timeout: STEP_TIMEOUT_MS });
    const started = Date.now();
    await page.click('#run');
    await page.waitForFunction("document.body.dataset.run === 'done' || document.body.dataset.run === 'failed'", undefined, { timeout: RUN_TIMEOUT_MS - 10_000 });
    const status = await page.textContent('#run-status');
    console.log(`run: ${((Date.now() - started) / 1000).toFixed(1)} s; ${status}; ${await page.textContent('#max-error')}; ${await page.textContent('#ratios')}`);
    expect(await page.getAttribute('body', 'data-run'), status ?? '').toBe('done');
    const outError = Number(await page.getAttribute('#max-error', 'data-value'));
    const lseError = Number(await page.getAttribute('#max-error', 'data-lse'));
    expect(outError).toBeLessThanOrEqual(2e-4);
    expect(lseError).toBeLessThanOrEqual(2e-4);
    expect(await page.$$eval('#timings td', (tds) => tds.length)).toBe(6);
    const screenshot = process.env['DCAGEN_PLAYGROUND_SCREENSHOT'];
    if (screenshot !== undefined && screenshot !== '') {
      await mkdir(dirname(resolve(ROOT, screenshot)), { recursive: true });
      await page.screenshot({ path: resolve(ROOT, screenshot), fullPage: true });
    }
  });

  it('downloads the CUDA kernel, equal to what dcagen emit writes', { timeout: STEP_TIMEOUT_MS }, async () => {
    await page.click('#download');
    const link = await page.waitForSelector('a[data-backend="cuda"][download$=".cu"]', { timeout: STEP_TIMEOUT_MS });
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const name = download.suggestedFilename();
    const downloaded = await readFile((await download.path())!, 'utf8');
    const command = (await page.textContent('code.command[data-backend="cuda"]'))!;
    expect(command).toMatch(/^dcagen emit --backend cuda --pattern-file pattern\.ts --chunk-size 9 --local-window 3 --head-dim 32 --dtype f32 -o kernels$/);
    // The pattern file the page offers beside the kernels, saved where the command expects it.
    const dir = join(work, 'emit');
    await mkdir(dir);
    const [patternFile] = await Promise.all([page.waitForEvent('download'), page.click('a[data-backend="pattern"]')]);
    expect(patternFile.suggestedFilename()).toBe('pattern.ts');
    await writeFile(join(dir, 'pattern.ts'), await readFile((await patternFile.path())!, 'utf8'));
    const cli = await dcagen(command.split(' ').slice(1), dir);
    expect(cli.stderr).toBe('');
    expect(cli.exitCode).toBe(0);
    expect(await readFile(join(dir, 'kernels', name), 'utf8')).toBe(downloaded);
  });

  it('says so clearly when the adapter has no shader-f16 (SwiftShader has none) and the run asks for f16', { timeout: STEP_TIMEOUT_MS }, async () => {
    const hasF16 = await page.evaluate("navigator.gpu.requestAdapter().then((a) => a.features.has('shader-f16'))");
    if (hasF16 === true) {
      console.log('this adapter has shader-f16: nothing to refuse');
      return;
    }
    await page.selectOption('#dtype', 'f16');
    await page.click('#run');
    await page.waitForFunction("document.body.dataset.run === 'failed' || document.body.dataset.run === 'done'", undefined, { timeout: STEP_TIMEOUT_MS });
    expect(await page.getAttribute('#run-status', 'class')).toBe('unavailable');
    expect(await page.textContent('#run-status')).toMatch(/^This WebGPU adapter \(.*\) has no shader-f16, so the f16 kernel cannot run here: choose f32\.$/);
    await page.selectOption('#dtype', 'f32');
  });

  it('says so clearly when the browser has no WebGPU, and still draws the matrix', { timeout: STEP_TIMEOUT_MS }, async () => {
    const context = await browser!.newContext();
    try {
      const bare = await context.newPage();
      // A browser without WebGPU: navigator.gpu is absent.
      await bare.addInitScript("Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });");
      await bare.goto(server!.resolvedUrls!.local[0]!);
      await bare.waitForSelector('body[data-ready="true"]', { timeout: STEP_TIMEOUT_MS });
      expect(await bare.$$eval('#matrix rect.cell', (cells) => cells.length)).toBeGreaterThan(0);
      await bare.click('#run');
      await bare.waitForFunction("document.body.dataset.run === 'failed'", undefined, { timeout: STEP_TIMEOUT_MS });
      expect(await bare.getAttribute('#run-status', 'class')).toBe('unavailable');
      expect(await bare.textContent('#run-status')).toMatch(/^This browser has no WebGPU \(navigator\.gpu is missing\)/);
    } finally {
      await context.close();
    }
  });
});
