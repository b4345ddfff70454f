// Browser side of runtime/browser/chromium.ts: a generic WebGPU job runner. It contains no dcagen
// code on purpose: `attention` jobs import an emitted launcher module exactly as a web page would
// (`import { createAttention } from './x.js'`) and use only its public API; `compile` jobs hand a
// WGSL file to the browser's compiler (Tint) and report its diagnostics.
//
// Protocol with the server that served this page (same origin, 127.0.0.1):
//   POST /hello            {ok, adapter | reason}                 once, after looking for an adapter
//   GET  /next             a job, {kind: "wait"} (poll again) or {kind: "stop"}
//   POST /upload/<id>/<n>  raw bytes of output <n> of job <id>   before that job's result
//   POST /result/<id>      {ok, ...} JSON                         one per job
//   POST /log              {message}                              uncaught errors, for diagnostics

// Limits a flash-attention kernel meets first; each device asks for the adapter's maximum, as a
// compute-heavy web app would, instead of the WebGPU defaults.
const RAISED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxStorageBuffersPerShaderStage',
];

function errorText(e) {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

async function post(path, body, contentType = 'application/json') {
  const response = await fetch(path, { method: 'POST', body, headers: { 'content-type': contentType } });
  if (!response.ok) throw new Error(`POST ${path}: HTTP ${response.status}`);
}

window.addEventListener('error', (event) => {
  post('/log', JSON.stringify({ message: `uncaught: ${event.message}` })).catch(() => {});
});
window.addEventListener('unhandledrejection', (event) => {
  post('/log', JSON.stringify({ message: `unhandled rejection: ${errorText(event.reason)}` })).catch(() => {});
});

function adapterInfo(adapter) {
  const info = adapter.info ?? {};
  const limits = {};
  for (const name of RAISED_LIMITS) limits[name] = adapter.limits[name];
  return {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    isFallbackAdapter: info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false,
    features: [...adapter.features].sort(),
    limits,
  };
}

async function requestAdapter() {
  if (!navigator.gpu) throw new Error('navigator.gpu is undefined (WebGPU disabled, or the page is not a secure context)');
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error('navigator.gpu.requestAdapter() returned null');
  return adapter;
}

/**
 * A fresh adapter and device per job: a job that loses its device cannot spoil the next one, and
 * no pipeline compiled by an earlier job is reused in-process by a later one.
 */
async function openDevice(requiredFeatures, optionalFeatures) {
  const adapter = await requestAdapter();
  const missing = requiredFeatures.filter((f) => !adapter.features.has(f));
  if (missing.length > 0) {
    const error = new Error(`adapter lacks required feature(s) ${missing.join(', ')}`);
    error.unavailable = true;
    throw error;
  }
  const features = [...requiredFeatures, ...optionalFeatures.filter((f) => adapter.features.has(f) && !requiredFeatures.includes(f))];
  const requiredLimits = {};
  for (const name of RAISED_LIMITS) {
    if (adapter.limits[name] !== undefined) requiredLimits[name] = adapter.limits[name];
  }
  const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  // Dawn reports invalid shaders and calls as uncaptured errors; keep every message for the result.
  const errors = [];
  device.addEventListener('uncapturederror', (event) => errors.push(event.error.message));
  device.lost.then((info) => {
    if (info.reason !== 'destroyed') errors.push(`device lost: ${info.message}`);
  });
  return { device, errors, features };
}

const SCOPES = ['validation', 'internal', 'out-of-memory'];

function pushScopes(device) {
  for (const scope of SCOPES) device.pushErrorScope(scope);
}

async function popScopes(device, errors) {
  for (let k = 0; k < SCOPES.length; k++) {
    const error = await device.popErrorScope();
    if (error) errors.push(error.message);
  }
}

async function fetchBytes(name) {
  const response = await fetch(`/files/${name}`);
  if (!response.ok) throw new Error(`GET /files/${name}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function fetchText(name) {
  const response = await fetch(`/files/${name}`);
  if (!response.ok) throw new Error(`GET /files/${name}: HTTP ${response.status}`);
  return response.text();
}

const align4 = (n) => Math.ceil(n / 4) * 4;
const STORAGE = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;

function upload(device, bytes) {
  // writeBuffer wants a multiple of 4 bytes: pad a copy (f16 tensors of odd length).
  const size = Math.max(16, align4(bytes.byteLength));
  const padded = new Uint8Array(align4(bytes.byteLength));
  padded.set(bytes);
  const buffer = device.createBuffer({ size, usage: STORAGE() });
  if (padded.byteLength > 0) device.queue.writeBuffer(buffer, 0, padded);
  return buffer;
}

async function readBack(device, buffer, bytes) {
  const staging = device.createBuffer({ size: Math.max(16, align4(bytes)), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, align4(bytes));
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const copy = new Uint8Array(staging.getMappedRange().slice(0, bytes));
  staging.unmap();
  staging.destroy();
  return copy;
}

/** Imports an emitted launcher, runs it once on the job's tensors, and uploads out and lse. */
async function attentionJob(job) {
  const { device, errors, features } = await openDevice(job.requiredFeatures ?? [], job.optionalFeatures ?? []);
  const timings = {};
  pushScopes(device);
  try {
    // The job id in the query keeps two jobs with the same file name from sharing a module.
    const launcher = await import(`/files/${job.launcher}?job=${job.id}`);
    let start = performance.now();
    const attention = await launcher.createAttention(device, job.options ?? {});
    timings.createMs = performance.now() - start;
    const { batch, queries, queryHeads, headDim } = job.shape;
    const [q, k, v] = await Promise.all([job.inputs.q, job.inputs.k, job.inputs.v].map(async (name) => upload(device, await fetchBytes(name))));
    const outBytes = batch * queries * queryHeads * headDim * attention.elementBytes;
    const lseBytes = batch * queryHeads * queries * 4;
    const out = device.createBuffer({ size: Math.max(16, align4(outBytes)), usage: STORAGE() });
    const lse = device.createBuffer({ size: Math.max(16, align4(lseBytes)), usage: STORAGE() });
    start = performance.now();
    await attention.run({ q, k, v, out, lse }, job.shape);
    timings.runMs = performance.now() - start;
    const outData = await readBack(device, out, outBytes);
    const lseData = await readBack(device, lse, lseBytes);
    await popScopes(device, errors);
    await post(`/upload/${job.id}/out`, outData, 'application/octet-stream');
    await post(`/upload/${job.id}/lse`, lseData, 'application/octet-stream');
    const split = attention.splitPlan?.(job.shape);
    return { ok: errors.length === 0, ...timings, errors, features, split, subgroups: attention.subgroups };
  } catch (e) {
    // The scopes hold the WebGPU errors behind the exception (a shader Tint rejected, say).
    await popScopes(device, errors).catch(() => {});
    return { ok: false, error: errorText(e), ...timings, errors, features };
  } finally {
    device.destroy();
  }
}

/** Compiles one WGSL file: the compiler's messages, and optionally a pipeline and its build time. */
async function compileJob(job) {
  const { device, errors, features } = await openDevice(job.requiredFeatures ?? [], job.optionalFeatures ?? []);
  try {
    const code = await fetchText(job.wgsl);
    pushScopes(device);
    let start = performance.now();
    const module = device.createShaderModule({ label: job.wgsl, code });
    const info = await module.getCompilationInfo();
    const compileMs = performance.now() - start;
    const messages = info.messages.map((m) => ({ type: m.type, message: m.message, lineNum: m.lineNum, linePos: m.linePos }));
    const result = { ok: true, compileMs, messages, features };
    if (job.pipeline) {
      start = performance.now();
      try {
        const compute = job.entryPoint ? { module, entryPoint: job.entryPoint } : { module };
        await device.createComputePipelineAsync({ label: job.wgsl, layout: 'auto', compute });
        result.pipelineMs = performance.now() - start;
      } catch (e) {
        result.pipelineError = errorText(e);
      }
    }
    await popScopes(device, errors);
    result.errors = errors;
    return result;
  } finally {
    device.destroy();
  }
}

const JOBS = { attention: attentionJob, compile: compileJob };

async function main() {
  try {
    const adapter = await requestAdapter();
    await post('/hello', JSON.stringify({ ok: true, adapter: adapterInfo(adapter), userAgent: navigator.userAgent }));
  } catch (e) {
    await post('/hello', JSON.stringify({ ok: false, reason: errorText(e), userAgent: navigator.userAgent }));
    return;
  }
  for (;;) {
    const response = await fetch('/next', { cache: 'no-store' });
    const job = await response.json();
    if (job.kind === 'stop') return;
    if (job.kind === 'wait') continue;
    let result;
    try {
      const run = JOBS[job.kind];
      if (!run) throw new Error(`unknown job kind ${job.kind}`);
      result = await run(job);
    } catch (e) {
      result = { ok: false, unavailable: e?.unavailable === true, error: errorText(e) };
    }
    await post(`/result/${job.id}`, JSON.stringify(result));
  }
}

main().catch((e) => post('/log', JSON.stringify({ message: `harness page stopped: ${errorText(e)}` })).catch(() => {}));
