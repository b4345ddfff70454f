// Runs emitted WGSL in headless Chromium, the way a web page would: Chromium's WebGPU is Dawn and
// its WGSL compiler is Tint, which is stricter than the wgpu/naga that runtime/webgpu drives from
// Deno. A ChromiumSession serves a folder (launcher modules, .wgsl files, raw tensors) plus the
// generic harness page (runtime/browser/page.html + page.js) from a node:http server on
// 127.0.0.1, starts Chromium on it, and hands the page jobs one at a time; the page posts results
// (JSON) and outputs (raw bytes) back to the server. No browser-automation library is involved.
//
// One session serves many jobs because starting Chromium costs seconds. Failures are the project's
// typed errors with one-line messages: UnavailableError when there is no chromium binary, it dies
// at start-up or its page gets no WebGPU adapter; WebGpuKernelError (a KernelError) when a job
// fails or times out. A job that times out ends the session (the page is stuck inside the
// browser), so later jobs fail at once instead of each waiting out its own timeout.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KernelError, UnavailableError } from '../../src/errors.js';
import { WebGpuKernelError } from '../webgpu/runner.js';

/**
 * Flags that give headless Chromium a WebGPU adapter on a machine without a GPU: Dawn's Vulkan
 * backend on the SwiftShader ICD that Chromium ships. --enable-unsafe-webgpu also lifts Dawn's
 * adapter blocklist, which otherwise hides CPU adapters.
 */
export const WEBGPU_FLAGS: readonly string[] = [
  '--headless=new',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
];

/** Flags that keep a throw-away profile quiet: no first-run UI, no background network traffic. */
const QUIET_FLAGS: readonly string[] = [
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-extensions',
  '--mute-audio',
];

const CHROMIUM_NAMES = ['chromium', 'chromium-browser'];
/** The Debian package that provides `chromium` (what the error message tells people to install). */
export const CHROMIUM_APT_PACKAGE = 'chromium';

const DEFAULT_STARTUP_TIMEOUT_MS = 60_000;
const DEFAULT_JOB_TIMEOUT_MS = 120_000;
/** The page re-polls /next at this interval, so no request stays open longer than any HTTP timeout. */
const POLL_MS = 15_000;
const MAX_BODY_BYTES = 512 * 1024 * 1024;
const STDERR_KEEP = 64 * 1024;

export interface BrowserAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  features: string[];
  limits: Record<string, number>;
}

export interface AttentionShapeJob {
  batch: number;
  queries: number;
  keys: number;
  queryHeads: number;
  keyHeads: number;
  headDim: number;
}

/** Imports `launcher` (a file under the served root) and runs `createAttention(...).run` once. */
export interface AttentionJob {
  kind: 'attention';
  launcher: string;
  /** Passed to createAttention: ropeTheta, scale, originalMaxPosition. */
  options?: { ropeTheta?: number; scale?: number; originalMaxPosition?: number };
  shape: AttentionShapeJob;
  /** Raw little-endian q, k, v in the launcher's storage type, files under the served root. */
  inputs: { q: string; k: string; v: string };
  requiredFeatures?: string[];
  optionalFeatures?: string[];
}

/** createShaderModule + getCompilationInfo on one WGSL file; optionally a compute pipeline too. */
export interface CompileJob {
  kind: 'compile';
  wgsl: string;
  /** Also build the compute pipeline and time createComputePipelineAsync. */
  pipeline?: boolean;
  /** Needed when the module has more than one compute entry point. */
  entryPoint?: string;
  requiredFeatures?: string[];
  optionalFeatures?: string[];
}

export type BrowserJob = AttentionJob | CompileJob;

interface JobResultBase {
  ok: boolean;
  /** Features the job's device was created with. */
  features: string[];
  /** WebGPU errors seen during the job (error scopes and uncaptured errors). */
  errors: string[];
}

export interface AttentionJobResult extends JobResultBase {
  /** createAttention (shader modules and pipelines), milliseconds. */
  createMs: number;
  /** One attention.run, submit to completion, milliseconds. */
  runMs: number;
  /** The launcher's choice for this call (kernel kind, key splits) and whether it used subgroup operations. */
  split?: { kind?: string; splits: number; splitKeys: number };
  subgroups?: boolean;
  /** Raw out (storage type) and lse (f32) bytes. */
  out: Uint8Array;
  lse: Uint8Array;
}

export interface CompilationMessage {
  type: 'error' | 'warning' | 'info';
  message: string;
  lineNum: number;
  linePos: number;
}

export interface CompileJobResult extends JobResultBase {
  compileMs: number;
  messages: CompilationMessage[];
  pipelineMs?: number;
  pipelineError?: string;
}

export interface ChromiumSessionOptions {
  /** Folder served at /files/: launchers, .wgsl files, tensors. Read at request time. */
  root: string;
  /** Start-up (launch until the page reports its adapter) limit; default 60 s. */
  startupTimeoutMs?: number;
  /** Flags after WEBGPU_FLAGS (experiments with other adapters, logging). */
  extraFlags?: readonly string[];
  /** Extra environment for Chromium (e.g. VK_ICD_FILENAMES). */
  env?: Readonly<Record<string, string>>;
}

/** The chromium executable: $DCAGEN_CHROMIUM, else `chromium` or `chromium-browser` on PATH. */
export function findChromium(): string {
  const override = process.env['DCAGEN_CHROMIUM'];
  if (override !== undefined && override !== '') {
    const path = override.includes(sep) ? resolve(override) : lookPath(override);
    if (path === undefined || !isExecutable(path)) throw new UnavailableError(`DCAGEN_CHROMIUM=${override} is not an executable file`);
    return path;
  }
  for (const name of CHROMIUM_NAMES) {
    const path = lookPath(name);
    if (path !== undefined) return path;
  }
  throw new UnavailableError(
    `chromium not found on PATH (tried ${CHROMIUM_NAMES.join(', ')}): install the Debian package '${CHROMIUM_APT_PACKAGE}' (apt-get install ${CHROMIUM_APT_PACKAGE}) or set DCAGEN_CHROMIUM to a Chromium binary`,
  );
}

function lookPath(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    const st = statSync(path);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * runtime/browser/page.html and page.js. This module runs both from runtime/browser/chromium.ts
 * (vitest) and from dist/runtime/browser/chromium.js (tsc output, which does not copy them), so walk
 * upwards rather than assume a fixed depth.
 */
function findPageFolder(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'runtime', 'browser');
    if (existsSync(join(candidate, 'page.html')) && existsSync(join(candidate, 'page.js'))) return candidate;
    if (existsSync(join(dir, 'page.html')) && existsSync(join(dir, 'page.js'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new UnavailableError(`runtime/browser/page.html not found above ${fileURLToPath(import.meta.url)}`);
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  // Module scripts load only with a JavaScript MIME type.
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wgsl': 'text/plain; charset=utf-8',
};

/** A served path: `/files/a/b.js` → root/a/b.js, refusing anything that could leave the root. */
function servedPath(root: string, urlPath: string): string | undefined {
  const parts = urlPath.split('/').filter((p) => p !== '');
  if (parts.length === 0 || !parts.every((p) => /^[A-Za-z0-9._-]+$/.test(p) && p !== '.' && p !== '..')) return undefined;
  const path = resolve(root, ...parts);
  return path.startsWith(resolve(root) + sep) ? path : undefined;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** The most telling line of Chromium's stderr: an error or fatal line, else the last one. */
function summariseStderr(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && !/dbus|D-Bus/i.test(l));
  const interesting = [...lines].reverse().find((l) => /FATAL|ERROR|error while loading|cannot|Missing/i.test(l)) ?? lines[lines.length - 1];
  return interesting ?? 'no output';
}

interface PendingJob {
  id: number;
  label: string;
  job: BrowserJob;
  resolve: (value: { result: Record<string, unknown>; files: Map<string, Uint8Array> }) => void;
  reject: (error: Error) => void;
  files: Map<string, Uint8Array>;
  timer?: NodeJS.Timeout;
}

interface Hello {
  ok: boolean;
  adapter?: BrowserAdapterInfo;
  reason?: string;
  userAgent?: string;
}

export class ChromiumSession {
  /** The adapter the page got from navigator.gpu.requestAdapter(). */
  adapter!: BrowserAdapterInfo;
  /** navigator.userAgent, which names the Chromium version. */
  userAgent = '';
  /** Milliseconds from launch until the page reported its adapter. */
  startupMs = 0;
  readonly binary: string;
  readonly flags: readonly string[];

  private readonly root: string;
  private readonly pageFolder: string;
  private readonly env: Readonly<Record<string, string>>;
  private server?: Server;
  private child?: ChildProcess;
  private workDir?: string;
  private stderr = '';
  private pageLog: string[] = [];
  private queue: PendingJob[] = [];
  private running = new Map<number, PendingJob>();
  private waiters: ServerResponse[] = [];
  private nextId = 1;
  private ended?: string;
  private exitHandler?: () => void;
  private helloWaiter?: { resolve: (hello: Hello) => void; reject: (error: Error) => void };

  private constructor(binary: string, options: ChromiumSessionOptions) {
    this.binary = binary;
    this.root = resolve(options.root);
    this.pageFolder = findPageFolder();
    this.flags = [...WEBGPU_FLAGS, ...QUIET_FLAGS, ...(options.extraFlags ?? [])];
    this.env = options.env ?? {};
  }

  /** Starts the server and Chromium, and waits until the page has a WebGPU adapter. */
  static async start(options: ChromiumSessionOptions): Promise<ChromiumSession> {
    const session = new ChromiumSession(findChromium(), options);
    try {
      await session.launch(options.startupTimeoutMs ?? DEFAULT_STARTUP_TIMEOUT_MS);
      return session;
    } catch (error) {
      await session.close();
      throw error;
    }
  }

  private async launch(timeoutMs: number): Promise<void> {
    if (!existsSync(this.root)) throw new UnavailableError(`served folder ${this.root} does not exist`);
    // One private folder holds the profile and XDG_RUNTIME_DIR (0700 by mkdtemp, as Mesa wants it).
    this.workDir = await mkdtemp(join(tmpdir(), 'dcagen-chromium-'));
    const profile = join(this.workDir, 'profile');
    const runtimeDir = join(this.workDir, 'xdg');
    await mkdir(profile);
    await mkdir(runtimeDir, { mode: 0o700 });

    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(error));
      });
    });
    this.server = server;
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(0, '127.0.0.1', () => ok());
    });
    const port = (server.address() as AddressInfo).port;

    const hello = new Promise<Hello>((ok, fail) => {
      this.helloWaiter = { resolve: ok, reject: fail };
    });
    // Settled by end() after a start-up timeout too, when nobody awaits it any more.
    hello.catch(() => {});
    const started = Date.now();
    // detached: Chromium leads its own process group, so close() can end it and every helper
    // process it forked (zygotes, GPU process, renderers) by that one group id.
    const child = spawn(this.binary, [...this.flags, `--user-data-dir=${profile}`, `http://127.0.0.1:${port}/`], {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, XDG_RUNTIME_DIR: runtimeDir, ...this.env },
    });
    this.child = child;
    // If the test process exits without close() (a crash, a killed worker), take Chromium along.
    this.exitHandler = () => this.killGroup('SIGKILL');
    process.once('exit', this.exitHandler);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-STDERR_KEEP);
    });
    child.once('error', (error: NodeJS.ErrnoException) => {
      this.end(`chromium could not be started (${error.code ?? error.message}): ${this.binary}`, UnavailableError);
    });
    child.once('exit', (code, signal) => {
      const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code ?? 'unknown'}`;
      this.end(`chromium ${how}: ${summariseStderr(this.stderr)}`, this.adapter === undefined ? UnavailableError : WebGpuKernelError);
    });

    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, fail) => {
      timer = setTimeout(
        () => fail(new UnavailableError(`chromium did not load the harness page within ${timeoutMs / 1000} s: ${summariseStderr(this.stderr)}`)),
        timeoutMs,
      );
    });
    try {
      const reply = await Promise.race([hello, timeout]);
      if (!reply.ok || reply.adapter === undefined) {
        const flags = this.flags.filter((f) => !QUIET_FLAGS.includes(f)).join(' ');
        throw new UnavailableError(`Chromium has no WebGPU adapter (${oneLine(reply.reason ?? 'no reason given')}); flags: ${flags}`);
      }
      this.adapter = reply.adapter;
      this.userAgent = reply.userAgent ?? '';
      this.startupMs = Date.now() - started;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The browser process (leader of Chromium's process group), while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Why the session is over (closed, Chromium gone, a job timed out), or undefined while it runs. */
  get endedReason(): string | undefined {
    return this.ended;
  }

  /** Runs one job in the page; rejects with WebGpuKernelError when it fails or times out. */
  async run(job: AttentionJob, timeoutMs?: number): Promise<AttentionJobResult>;
  async run(job: CompileJob, timeoutMs?: number): Promise<CompileJobResult>;
  async run(job: BrowserJob, timeoutMs = DEFAULT_JOB_TIMEOUT_MS): Promise<AttentionJobResult | CompileJobResult> {
    const label = job.kind === 'attention' ? `attention ${job.launcher}` : `compile ${job.wgsl}`;
    if (this.ended !== undefined) throw new WebGpuKernelError(`chromium ${label}: session already ended (${this.ended})`, this.detail());
    const id = this.nextId++;
    const { result, files } = await new Promise<{ result: Record<string, unknown>; files: Map<string, Uint8Array> }>((ok, fail) => {
      const pending: PendingJob = { id, label, job, resolve: ok, reject: fail, files: new Map() };
      pending.timer = setTimeout(() => {
        // The page is stuck inside the browser (a pipeline that never finishes compiling, say):
        // nothing more can run in this session.
        this.end(`chromium ${label} timed out after ${timeoutMs / 1000} s`, WebGpuKernelError);
      }, timeoutMs);
      this.queue.push(pending);
      this.dispatch();
    });
    if (result['ok'] !== true) {
      const errors = Array.isArray(result['errors']) ? (result['errors'] as string[]) : [];
      // The WebGPU error (Tint's diagnostic, say) explains more than the exception it led to.
      const first = errors[0] ?? (typeof result['error'] === 'string' ? result['error'] : 'failed');
      const detail = [typeof result['error'] === 'string' ? result['error'] : '', ...errors].filter((s) => s !== '').join('\n');
      if (result['unavailable'] === true) throw new UnavailableError(`chromium ${label}: ${oneLine(first)}`);
      throw new WebGpuKernelError(`chromium ${label}: ${oneLine(first)}`, detail);
    }
    if (job.kind === 'attention') {
      const out = files.get('out');
      const lse = files.get('lse');
      if (out === undefined || lse === undefined) throw new WebGpuKernelError(`chromium ${label}: the page posted no out/lse data`, this.detail());
      return { ...(result as unknown as Omit<AttentionJobResult, 'out' | 'lse'>), out, lse };
    }
    return result as unknown as CompileJobResult;
  }

  /** Stops Chromium (its whole process group) and the server, and deletes the profile. Idempotent. */
  async close(): Promise<void> {
    this.end('session closed', WebGpuKernelError);
    const child = this.child;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
      this.killGroup('SIGTERM');
      const graceful = await Promise.race([exited.then(() => true), new Promise<boolean>((ok) => setTimeout(() => ok(false), 3_000))]);
      if (!graceful) {
        this.killGroup('SIGKILL');
        await Promise.race([exited, new Promise<void>((ok) => setTimeout(ok, 3_000))]);
      }
    }
    // Helpers that outlived the browser process still carry its group id.
    this.killGroup('SIGKILL');
    if (this.exitHandler !== undefined) process.removeListener('exit', this.exitHandler);
    this.exitHandler = undefined;
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
    }
    if (this.workDir !== undefined) {
      await rm(this.workDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
      this.workDir = undefined;
    }
  }

  private killGroup(signal: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // ESRCH: the group is already gone.
    }
  }

  /** Marks the session over and fails everything queued or running with `reason`. */
  private end(reason: string, kind: typeof UnavailableError | typeof WebGpuKernelError): void {
    if (this.ended !== undefined) return;
    this.ended = reason;
    this.helloWaiter?.reject(kind === UnavailableError ? new UnavailableError(reason) : new WebGpuKernelError(reason, this.detail()));
    this.helloWaiter = undefined;
    for (const pending of [...this.queue, ...this.running.values()]) {
      clearTimeout(pending.timer);
      // The job that timed out already has its label in the reason; the others say why they stop.
      const message = reason.includes(pending.label) ? reason : `chromium ${pending.label}: not run to the end, ${reason}`;
      pending.reject(new WebGpuKernelError(message, this.detail()));
    }
    this.queue = [];
    this.running.clear();
    for (const res of this.waiters.splice(0)) this.sendJson(res, { kind: 'stop' });
    // A stuck page cannot take further jobs; the browser goes now rather than at close().
    if (reason !== 'session closed') this.killGroup('SIGKILL');
  }

  private detail(): string {
    return [...this.pageLog, summariseStderr(this.stderr)].join('\n');
  }

  /** Hands the oldest queued job to a waiting /next request, if both exist. */
  private dispatch(): void {
    while (this.queue.length > 0 && this.waiters.length > 0) {
      const pending = this.queue.shift()!;
      const res = this.waiters.shift()!;
      this.running.set(pending.id, pending);
      this.sendJson(res, { ...pending.job, id: pending.id });
    }
  }

  private sendJson(res: ServerResponse, value: unknown): void {
    if (res.writableEnded) return;
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(value));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    // Only this machine's page talks to us: refuse other Host names (DNS rebinding).
    if (!/^127\.0\.0\.1:\d+$/.test(req.headers.host ?? '')) {
      res.writeHead(403).end();
      return;
    }
    const path = url.pathname;
    if (req.method === 'GET') {
      if (path === '/' || path === '/index.html') return this.sendFile(res, join(this.pageFolder, 'page.html'));
      if (path === '/page.js') return this.sendFile(res, join(this.pageFolder, 'page.js'));
      if (path.startsWith('/files/')) {
        const file = servedPath(this.root, path.slice('/files/'.length));
        if (file === undefined) {
          res.writeHead(404).end();
          return;
        }
        return this.sendFile(res, file);
      }
      if (path === '/next') return this.next(res);
      res.writeHead(404).end();
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    const body = await readBody(req);
    res.writeHead(204).end();
    if (path === '/hello') {
      this.helloWaiter?.resolve(JSON.parse(body.toString('utf8')) as Hello);
      this.helloWaiter = undefined;
      return;
    }
    if (path === '/log') {
      const message = (JSON.parse(body.toString('utf8')) as { message?: string }).message ?? '';
      this.pageLog = [...this.pageLog, `page: ${message}`].slice(-20);
      return;
    }
    const upload = /^\/upload\/(\d+)\/([A-Za-z0-9_-]+)$/.exec(path);
    if (upload !== null) {
      this.running.get(Number(upload[1]))?.files.set(upload[2]!, new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
      return;
    }
    const result = /^\/result\/(\d+)$/.exec(path);
    if (result !== null) {
      const pending = this.running.get(Number(result[1]));
      if (pending === undefined) return;
      this.running.delete(pending.id);
      clearTimeout(pending.timer);
      pending.resolve({ result: JSON.parse(body.toString('utf8')) as Record<string, unknown>, files: pending.files });
    }
  }

  /** Long poll: answer with a job as soon as one is queued, else "wait" after POLL_MS. */
  private next(res: ServerResponse): void {
    if (this.ended !== undefined) return this.sendJson(res, { kind: 'stop' });
    this.waiters.push(res);
    const timer = setTimeout(() => {
      const k = this.waiters.indexOf(res);
      if (k >= 0) {
        this.waiters.splice(k, 1);
        this.sendJson(res, { kind: 'wait' });
      }
    }, POLL_MS);
    res.once('close', () => {
      clearTimeout(timer);
      const k = this.waiters.indexOf(res);
      if (k >= 0) this.waiters.splice(k, 1);
    });
    this.dispatch();
  }

  private async sendFile(res: ServerResponse, path: string): Promise<void> {
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'content-type': CONTENT_TYPES[extname(path)] ?? 'application/octet-stream',
      'content-length': data.byteLength,
      'cache-control': 'no-store',
    });
    res.end(data);
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.byteLength;
    if (size > MAX_BODY_BYTES) throw new KernelError(`harness page posted more than ${MAX_BODY_BYTES} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}
