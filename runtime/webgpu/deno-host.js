// Deno-side host for one WebGPU job: opens an adapter and device, runs a launcher module's entry
// against it, and reports the outcome as one JSON line on stdout (plus readable text on stderr).
// Started by runtime/webgpu/runner.ts as `deno run <flags> deno-host.js <job.json>`; plain JS so
// Deno runs it without a type-check or a config file.
//
// Protocol (last stdout line):
//   {"ok":true,"adapter":{...},"result":<entry's return value>}                     exit 0
//   {"ok":false,"kind":"kernel","message":"<one line>","detail":"<multi-line>"}    exit 1
//   {"ok":false,"kind":"unavailable","message":"<one line>","detail":"..."}        exit 3
// The runner also copes with a host that dies without a line (panic, OOM, timeout kill).

const EXIT_KERNEL = 1;
const EXIT_UNAVAILABLE = 3;

// The limits a flash-attention kernel runs into first; raising them to the adapter's maximum keeps
// the defaults (128 MiB bindings, 16 KiB workgroup memory, 256 invocations) from failing big tiles.
const RAISED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  // Not needed by 1-D launches, but otherwise Y and Z stay at 256 and 64 while X goes to 1024.
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxStorageBuffersPerShaderStage",
];

// Launchers may console.log freely; stdout is reserved for the protocol line, so their output goes
// to stderr instead.
const protocolOut = Deno.stdout;
console.log = console.error;
console.info = console.error;
console.debug = console.error;

let finished = false;

function writeAllSync(file, text) {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
}

/** Reports and exits at once: a later error must not overwrite the first, more specific one. */
function fail(kind, message, detail = "") {
  if (finished) return;
  finished = true;
  const oneLine = message.replace(/\s*\n\s*/g, " ").trim();
  writeAllSync(Deno.stderr, `dcagen webgpu: ${oneLine}\n${detail ? detail.replace(/\n*$/, "\n") : ""}`);
  writeAllSync(protocolOut, JSON.stringify({ ok: false, kind, message: oneLine, detail }) + "\n");
  Deno.exit(kind === "unavailable" ? EXIT_UNAVAILABLE : EXIT_KERNEL);
}

function errorText(e) {
  if (e instanceof Error) return { message: e.message || e.name, detail: e.stack ?? "" };
  return { message: String(e), detail: "" };
}

// Typed arrays would serialise as {"0":..,"1":..}; launchers returning them mean a plain array.
function jsonReplacer(_key, value) {
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return Array.from(value, (x) => (typeof x === "bigint" ? x.toString() : x));
  if (typeof value === "bigint") return value.toString();
  return value;
}

/** First line of a wgpu message is the summary; the rest is the annotated source excerpt. */
function firstLine(text) {
  return String(text).split("\n").map((s) => s.trim()).find((s) => s.length > 0) ?? "";
}

/** wgpu prefixes every WGSL diagnostic with "Shader '<label>' parsing error:"; the label is already in front. */
function wgslSummary(text) {
  return firstLine(text).replace(/^Shader '[^']*' (parsing|validation) error:\s*/, "");
}

// A launcher's fire-and-forget promise that rejects would otherwise kill Deno with a coloured
// multi-line trace and no protocol line.
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  const { message, detail } = errorText(event.reason);
  fail("kernel", `unhandled rejection in launcher: ${message}`, detail);
});
globalThis.addEventListener("error", (event) => {
  event.preventDefault();
  const { message, detail } = errorText(event.error ?? event.message);
  fail("kernel", `uncaught error in launcher: ${message}`, detail);
});

// ---- job ------------------------------------------------------------------------------------

const jobPath = Deno.args[0];
if (!jobPath) fail("kernel", "usage: deno run <flags> deno-host.js <job.json>");

let job;
try {
  job = JSON.parse(await Deno.readTextFile(jobPath));
} catch (e) {
  fail("kernel", `cannot read job file ${jobPath}: ${errorText(e).message}`);
}
if (typeof job?.module !== "string" || typeof job?.entry !== "string") {
  fail("kernel", `job file ${jobPath} needs string fields "module" and "entry"`);
}
const requiredFeatures = job.requiredFeatures ?? [];
const optionalFeatures = job.optionalFeatures ?? [];

// ---- adapter and device ---------------------------------------------------------------------

if (!navigator.gpu) fail("unavailable", "this Deno has no navigator.gpu (WebGPU disabled in this build)");

let adapter;
try {
  adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
} catch (e) {
  fail("unavailable", `WebGPU requestAdapter failed: ${errorText(e).message}`);
}
if (!adapter) {
  fail(
    "unavailable",
    "no WebGPU adapter found (on Debian install mesa-vulkan-drivers and libvulkan1: .ci/install-webgpu.sh)",
  );
}

const adapterFeatures = [...adapter.features].sort();
const info = adapter.info ?? {};
const adapterInfo = {
  vendor: String(info.vendor ?? ""),
  architecture: String(info.architecture ?? ""),
  device: String(info.device ?? ""),
  description: String(info.description ?? ""),
  features: adapterFeatures,
  limits: {},
};
const adapterLabel = adapterInfo.description || adapterInfo.device || adapterInfo.vendor || "unknown adapter";

const missing = requiredFeatures.filter((f) => !adapter.features.has(f));
if (missing.length > 0) {
  fail(
    "unavailable",
    `WebGPU adapter "${adapterLabel}" lacks required feature(s) ${missing.join(", ")} (has: ${adapterFeatures.join(", ") || "none"})`,
  );
}

const requiredLimits = {};
for (const name of RAISED_LIMITS) {
  const value = adapter.limits[name];
  if (typeof value === "number") requiredLimits[name] = value;
}
adapterInfo.limits = { ...requiredLimits };

let device;
try {
  device = await adapter.requestDevice({
    requiredFeatures: [...requiredFeatures, ...optionalFeatures.filter((f) => adapter.features.has(f) && !requiredFeatures.includes(f))],
    requiredLimits,
  });
} catch (e) {
  fail("unavailable", `WebGPU requestDevice on "${adapterLabel}" failed: ${errorText(e).message}`);
}

// ---- error capture --------------------------------------------------------------------------

// Compile checks still in flight. Any other GPU error waits for them first, because an invalid
// shader module makes every later call that uses it fail with a vaguer "X is invalid" message.
const pendingChecks = new Set();
let shaderCount = 0;

function track(promise) {
  pendingChecks.add(promise);
  promise.finally(() => pendingChecks.delete(promise));
  return promise;
}

async function gpuFailure(what, message) {
  await Promise.allSettled([...pendingChecks]);
  fail("kernel", `${what} on "${adapterLabel}": ${firstLine(message)}`, String(message).trim());
}

device.addEventListener("uncapturederror", (event) => {
  void gpuFailure("WebGPU error", event.error?.message ?? String(event.error));
});

let destroyedByHost = false;
device.lost.then((lost) => {
  if (!destroyedByHost && !finished) {
    void gpuFailure("WebGPU device lost", `${lost.reason ?? "unknown"}: ${lost.message ?? ""}`);
  }
});

/** Compile messages formatted like a compiler: "<label>:<line>:<col>: error: <summary>". */
function formatCompileMessages(label, messages) {
  return messages
    .filter((m) => m.type === "error")
    .map((m) => `${label}:${m.lineNum}:${m.linePos}: error: ${wgslSummary(m.message)}`);
}

// Wrapping createShaderModule gives every module a label and a compile check without launchers
// having to remember getCompilationInfo; the error scope catches the wgpu parse/validation error
// whose text carries the annotated WGSL source lines.
const createShaderModule = device.createShaderModule.bind(device);
device.createShaderModule = (descriptor) => {
  const label = descriptor.label || `shader#${shaderCount}`;
  shaderCount += 1;
  device.pushErrorScope("validation");
  const module = createShaderModule({ ...descriptor, label });
  const scope = device.popErrorScope();
  track(
    (async () => {
      const [scopeError, compileInfo] = await Promise.all([
        scope,
        typeof module.getCompilationInfo === "function" ? module.getCompilationInfo() : Promise.resolve({ messages: [] }),
      ]);
      const lines = formatCompileMessages(label, compileInfo.messages);
      if (lines.length === 0 && scopeError) lines.push(`${label}: error: ${wgslSummary(scopeError.message)}`);
      if (lines.length > 0) {
        const detail = [
          ...compileInfo.messages.filter((m) => m.type === "error").map((m) => String(m.message).trim()),
          ...(scopeError && compileInfo.messages.length === 0 ? [String(scopeError.message).trim()] : []),
        ].join("\n\n");
        fail("kernel", `WGSL compilation failed on "${adapterLabel}": ${lines.join("; ")}`, detail);
      }
    })().catch(() => {}),
  );
  return module;
};

// Pipeline creation is where entry points, bindings and workgroup sizes are checked against the
// limits; scoping it ties the error to the pipeline's label instead of a later dispatch.
const createComputePipeline = device.createComputePipeline.bind(device);
device.createComputePipeline = (descriptor) => {
  device.pushErrorScope("validation");
  const pipeline = createComputePipeline(descriptor);
  const scope = device.popErrorScope();
  const label = descriptor.label || descriptor.compute?.entryPoint || "compute pipeline";
  track(
    scope.then((err) => {
      if (err) void gpuFailure(`compute pipeline "${label}" is invalid`, err.message);
    }).catch(() => {}),
  );
  return pipeline;
};

// ---- run ------------------------------------------------------------------------------------

const io = {
  readFile: (path) => Deno.readFile(path),
  writeFile: (path, bytes) => Deno.writeFile(path, bytes),
  adapterInfo,
};

let mod;
try {
  // Setting pathname percent-encodes spaces, '#' and '?' that a naive "file://" + path would misparse.
  const url = new URL("file:///");
  url.pathname = job.module;
  mod = await import(url.href);
} catch (e) {
  const { message, detail } = errorText(e);
  fail("kernel", `cannot load launcher ${job.module}: ${message}`, detail);
}
if (typeof mod[job.entry] !== "function") {
  fail("kernel", `launcher ${job.module} has no exported function "${job.entry}"`);
}

let result;
try {
  result = await mod[job.entry](device, job.args, io);
  // Errors from the last submissions arrive asynchronously; drain them before declaring success.
  await device.queue.onSubmittedWorkDone();
  await Promise.allSettled([...pendingChecks]);
  await new Promise((resolve) => setTimeout(resolve, 0));
} catch (e) {
  // A failing GPU call usually surfaces first as an obscure entry exception (a mapAsync that
  // rejects); the GPU's own error, when there is one, is the message worth showing.
  await Promise.allSettled([...pendingChecks]);
  await new Promise((resolve) => setTimeout(resolve, 0));
  const { message, detail } = errorText(e);
  fail("kernel", `launcher ${job.entry} failed on "${adapterLabel}": ${message}`, detail);
}

if (!finished) {
  let line;
  try {
    line = JSON.stringify({ ok: true, adapter: adapterInfo, result: result ?? null }, jsonReplacer);
  } catch (e) {
    fail("kernel", `launcher ${job.entry} returned a value that is not JSON-serialisable: ${errorText(e).message}`);
  }
  finished = true;
  destroyedByHost = true;
  device.destroy();
  writeAllSync(protocolOut, line + "\n");
  // wgpu keeps native threads alive; exit explicitly rather than waiting for the event loop.
  Deno.exit(0);
}
