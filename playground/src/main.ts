// The playground page: a pattern file in an editor, its parameters as inputs, the position matrix
// redrawn as you type, "Run" (the fused WGSL kernel on this browser's WebGPU adapter against the
// float64 reference in a worker, plus fused vs causal vs three-pass timings), and "Download" (the
// kernels for WGSL, CUDA and Metal). Everything runs in the page; nothing is sent anywhere.

import { kebab, compilePattern, type CompiledPattern } from '../../src/dsl/instantiate.js';
import type { PatternDefinition } from '../../src/dsl/pattern.js';
import { causal } from '../../src/patterns/index.js';
import { attentionShape } from '../../src/reference/attention.js';
import { tolerance } from '../../src/verify/cases.js';
import { createEditor } from './editor.js';
import { examples, type Example } from './examples.js';
import { checkDtype, gpuContext, runKernel, timeKernels, WebGpuUnavailableError } from './gpu.js';
import { drawErrorMap, errorMapCaption } from './heatmap.js';
import { runInputs, type ReferenceReply, type ReferenceRequest, type RunSettings } from './inputs.js';
import { emitCommandLine, emitFiles, KERNEL_BACKENDS, wgslLauncher } from './kernels.js';
import { drawMatrix, followHover } from './matrix.js';
import { compileText, PATTERN_FILE, type PatternOutcome } from './pattern.js';
import { installBundledTemplates } from './templates.js';

installBundledTemplates();

const EDIT_DELAY_MS = 250;
const TIMED_RUNS = 5;

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`index.html has no #${id}`);
  return found as T;
}

const ui = {
  example: element<HTMLSelectElement>('example'),
  editor: element<HTMLDivElement>('editor'),
  diagnostic: element<HTMLDivElement>('diagnostic'),
  params: element<HTMLDivElement>('params'),
  size: element<HTMLInputElement>('size'),
  matrix: element<HTMLDivElement>('matrix'),
  hover: element<HTMLDivElement>('hover'),
  run: element<HTMLButtonElement>('run'),
  runStatus: element<HTMLDivElement>('run-status'),
  maxError: element<HTMLDivElement>('max-error'),
  errorMap: element<HTMLCanvasElement>('error-map'),
  errorCaption: element<HTMLDivElement>('error-caption'),
  timings: element<HTMLDivElement>('timings'),
  download: element<HTMLButtonElement>('download'),
  downloads: element<HTMLDivElement>('downloads'),
};

/** Parameter values typed so far, by parameter name (kept across edits that keep the name). */
const paramValues = new Map<string, number>();
let shownParams = '';
let current: PatternOutcome | undefined;
/** Blob URLs of the download links shown (revoked when the links go). */
let downloadUrls: string[] = [];

for (const example of examples) ui.example.add(new Option(example.name, example.name));
const editor = createEditor(ui.editor, '', () => scheduleUpdate());
followHover(ui.matrix, ui.hover);

function loadExample(example: Example): void {
  paramValues.clear();
  for (const [name, value] of Object.entries(example.params)) paramValues.set(name, value);
  shownParams = '';
  editor.setText(example.source);
  update();
}

let timer: number | undefined;
function scheduleUpdate(): void {
  window.clearTimeout(timer);
  timer = window.setTimeout(update, EDIT_DELAY_MS);
}

/** Recompiles the editor's text with the current parameters and redraws what depends on it. */
function update(): void {
  window.clearTimeout(timer);
  let outcome = compileText(editor.text(), Object.fromEntries(paramValues));
  // New parameters get starting values: compile again with them.
  if (outcome.definition !== undefined && showParams(outcome.definition)) outcome = compileText(editor.text(), Object.fromEntries(paramValues));
  current = outcome;
  clearDownloads(); // they were the previous pattern's files
  if (outcome.ok) {
    editor.showProblem(undefined);
    ui.diagnostic.textContent = '';
    ui.diagnostic.className = 'ok';
    drawMatrix(ui.matrix, ui.hover, outcome.pattern, sizeValue());
  } else {
    editor.showProblem(outcome.at === undefined ? undefined : { ...outcome.at, message: outcome.message });
    ui.diagnostic.textContent = outcome.message;
    ui.diagnostic.className = 'error';
    ui.matrix.classList.add('stale');
  }
  document.body.dataset['state'] = outcome.ok ? 'ok' : 'error';
}

/**
 * One number input per parameter of the pattern, rebuilt only when the parameters change (then
 * returns true): a value typed before is kept, a new parameter starts at its default or minimum.
 */
function showParams(definition: PatternDefinition): boolean {
  const names = Object.keys(definition.params);
  const key = JSON.stringify(Object.entries(definition.params));
  if (key === shownParams) return false;
  shownParams = key;
  ui.params.replaceChildren();
  if (names.length === 0) ui.params.textContent = 'this pattern has no parameters';
  for (const name of names) {
    const spec = definition.params[name]!;
    const value = paramValues.get(name) ?? spec.default ?? spec.min ?? 1;
    paramValues.set(name, value);
    const label = document.createElement('label');
    label.title = spec.description;
    const input = document.createElement('input');
    input.type = 'number';
    input.step = '1';
    input.id = `param-${name}`;
    input.value = String(value);
    if (spec.min !== undefined) input.min = String(spec.min);
    if (spec.max !== undefined) input.max = String(spec.max);
    input.addEventListener('input', () => {
      const parsed = Number(input.value);
      if (input.value.trim() !== '' && Number.isFinite(parsed)) paramValues.set(name, parsed);
      scheduleUpdate();
    });
    label.append(`--${kebab(name)} `, input);
    const help = document.createElement('span');
    help.className = 'help';
    help.textContent = spec.description;
    label.append(help);
    ui.params.append(label);
  }
  return true;
}

function sizeValue(): number {
  const n = Math.round(Number(ui.size.value));
  return Number.isFinite(n) ? Math.min(256, Math.max(1, n)) : 24;
}

function numberInput(id: string): number {
  const value = Number(element<HTMLInputElement>(id).value);
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${id.replace(/-/g, ' ')} must be a positive integer`);
  return value;
}

function runSettings(): RunSettings {
  const dtype = element<HTMLSelectElement>('dtype').value === 'f16' ? 'f16' : 'f32';
  return {
    shape: {
      batch: numberInput('batch'),
      queries: numberInput('queries'),
      keys: numberInput('keys'),
      queryHeads: numberInput('query-heads'),
      keyHeads: numberInput('key-heads'),
      headDim: numberInput('head-dim'),
    },
    seed: numberInput('seed'),
    dtype,
    ropeTheta: 10000,
  };
}

function compiledOrSay(): CompiledPattern | undefined {
  if (current?.ok) return current.pattern;
  ui.runStatus.textContent = 'fix the pattern first (see the message under the editor)';
  ui.runStatus.className = 'error';
  return undefined;
}

let worker: Worker | undefined;
function reference(request: ReferenceRequest): Promise<ReferenceReply> {
  worker ??= new Worker(new URL('./reference-worker.ts', import.meta.url), { type: 'module' });
  const w = worker;
  return new Promise((resolve) => {
    w.onmessage = (event: MessageEvent<ReferenceReply>) => resolve(event.data);
    w.onerror = (event) => resolve({ ok: false, message: `reference worker: ${event.message}` });
    w.postMessage(request);
  });
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let k = 0; k < a.length; k++) {
    // Equal infinities (a row that sees no key has lse −∞) count as exact; NaN as the worst.
    const d = a[k] === b[k] ? 0 : Math.abs(a[k]! - b[k]!);
    worst = Math.max(worst, Number.isNaN(d) ? Infinity : d);
  }
  return worst;
}

async function run(): Promise<void> {
  const pattern = compiledOrSay();
  if (pattern === undefined) return;
  ui.run.disabled = true;
  ui.maxError.textContent = '';
  ui.maxError.removeAttribute('data-value');
  ui.timings.replaceChildren();
  ui.runStatus.className = '';
  document.body.dataset['run'] = 'running';
  try {
    const settings = runSettings();
    const text = editor.text();
    const inputs = runInputs(settings);
    // Shape problems (Hq not a multiple of Hk, Sq > Sk) are the reference's one-line messages.
    attentionShape(inputs.q, inputs.k, inputs.v);
    ui.runStatus.textContent = 'float64 reference running in a worker…';
    const expected = reference({ text, params: pattern.params, settings });
    ui.runStatus.textContent = 'opening the WebGPU adapter…';
    const gpu = await gpuContext();
    checkDtype(gpu, settings.dtype);
    ui.runStatus.textContent = `compiling and running the fused ${pattern.name} kernel on ${gpu.adapterName}…`;
    const fusedLauncher = wgslLauncher({ pattern, headDim: settings.shape.headDim, dtype: settings.dtype });
    const got = await runKernel(gpu, fusedLauncher, settings, { q: inputs.q.data, k: inputs.k.data, v: inputs.v.data });
    const want = await expected;
    if (!want.ok) throw new Error(want.message);
    const tol = tolerance(settings.dtype);
    const outError = maxAbs(got.out, want.out);
    const lseError = maxAbs(got.lse, want.lse);
    ui.maxError.dataset['value'] = String(outError);
    ui.maxError.dataset['lse'] = String(lseError);
    ui.maxError.className = outError <= tol && lseError <= tol ? 'ok' : 'error';
    ui.maxError.textContent = `max |Δout| = ${outError.toExponential(2)}, max |Δlse| = ${lseError.toExponential(2)} (${settings.dtype} tolerance ${tol.toExponential(0)}) ${outError <= tol && lseError <= tol ? '✓' : '✗'} — kernel ${got.runMs.toFixed(1)} ms (+ ${got.createMs.toFixed(0)} ms to build pipelines), reference ${want.ms.toFixed(0)} ms`;
    const { queries, queryHeads, headDim } = settings.shape;
    const perRow = queryHeads * headDim;
    const diff = new Float64Array(queries * perRow);
    for (let k = 0; k < diff.length; k++) diff[k] = Math.abs(got.out[k]! - want.out[k]!);
    drawErrorMap(ui.errorMap, diff, queries, perRow, tol);
    ui.errorCaption.textContent = errorMapCaption(tol);

    ui.runStatus.textContent = `timing fused ${pattern.name} vs causal vs three-pass (${TIMED_RUNS} interleaved runs each)…`;
    const causalPattern = compilePattern(causal, {});
    const request = { headDim, dtype: settings.dtype };
    const medians = await timeKernels(gpu, [fusedLauncher, wgslLauncher({ ...request, pattern: causalPattern }), wgslLauncher({ ...request, pattern, variant: 'three-pass' })], settings, { q: inputs.q.data, k: inputs.k.data, v: inputs.v.data }, TIMED_RUNS);
    showTimings(pattern.name, medians as [number, number, number], gpu.adapterName);
    ui.runStatus.textContent = `done on ${gpu.adapterName}`;
    document.body.dataset['run'] = 'done';
  } catch (error) {
    ui.runStatus.textContent = error instanceof Error ? error.message : String(error);
    ui.runStatus.className = error instanceof WebGpuUnavailableError ? 'unavailable' : 'error';
    document.body.dataset['run'] = 'failed';
  } finally {
    ui.run.disabled = false;
  }
}

function showTimings(name: string, [fused, plain, threePass]: [number, number, number], adapter: string): void {
  const table = document.createElement('table');
  const row = (cells: string[], header = false): void => {
    const tr = table.insertRow();
    for (const c of cells) {
      const cell = document.createElement(header ? 'th' : 'td');
      cell.textContent = c;
      tr.append(cell);
    }
  };
  row(['kernel', 'median ms'], true);
  row([`fused ${name}`, fused.toFixed(2)]);
  row(['causal flash (same skeleton)', plain.toFixed(2)]);
  row([`three-pass ${name} (3 kernels + merge)`, threePass.toFixed(2)]);
  const ratios = document.createElement('p');
  ratios.id = 'ratios';
  ratios.textContent = `${name} / causal = ${(fused / plain).toFixed(3)}, three-pass / fused = ${(threePass / fused).toFixed(3)} on ${adapter} (as dcagen bench reports them)`;
  ui.timings.replaceChildren(table, ratios);
}

function clearDownloads(): void {
  for (const url of downloadUrls) URL.revokeObjectURL(url);
  downloadUrls = [];
  ui.downloads.replaceChildren();
  ui.downloads.className = '';
}

function download(): void {
  const pattern = compiledOrSay();
  if (pattern === undefined) return;
  clearDownloads();
  try {
    const settings = runSettings();
    const request = { pattern, headDim: settings.shape.headDim, dtype: settings.dtype };
    // The pattern file itself, so the commands below reproduce every file with the CLI.
    const source = document.createElement('p');
    source.append(fileLink(PATTERN_FILE, editor.text(), 'pattern'), ' — then, beside it:');
    ui.downloads.append(source);
    for (const backend of KERNEL_BACKENDS) {
      const section = document.createElement('div');
      section.className = 'backend';
      const heading = document.createElement('h3');
      heading.textContent = backend.toUpperCase();
      const command = document.createElement('code');
      command.dataset['backend'] = backend;
      command.className = 'command';
      command.textContent = emitCommandLine(backend, request);
      const list = document.createElement('ul');
      for (const file of emitFiles(backend, request)) {
        const item = document.createElement('li');
        item.append(fileLink(file.name, file.contents, backend), ` (${(file.contents.length / 1024).toFixed(1)} KiB)`);
        list.append(item);
      }
      section.append(heading, command, list);
      ui.downloads.append(section);
    }
  } catch (error) {
    ui.downloads.textContent = error instanceof Error ? error.message : String(error);
    ui.downloads.className = 'error';
  }
}

/** A link that saves `contents` as a file named `name` (a Blob URL: the text never leaves the page). */
function fileLink(name: string, contents: string, kind: string): HTMLAnchorElement {
  const url = URL.createObjectURL(new Blob([contents], { type: 'text/plain' }));
  downloadUrls.push(url);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.dataset['backend'] = kind;
  link.textContent = name;
  return link;
}

ui.example.addEventListener('change', () => loadExample(examples.find((e) => e.name === ui.example.value)!));
ui.size.addEventListener('input', scheduleUpdate);
ui.run.addEventListener('click', () => void run());
ui.download.addEventListener('click', download);

const first = examples.find((e) => e.name === 'dca') ?? examples[0]!;
ui.example.value = first.name;
loadExample(first);
document.body.dataset['ready'] = 'true';
