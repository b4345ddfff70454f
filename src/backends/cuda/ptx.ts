// Reads PTX (what nvcc hands to ptxas) for the static cost report: splits it into entry functions,
// finds their loops from labels and backward branches, picks the steady-state key loop of an
// attention kernel, and counts its instructions by kind (tensor-core MMAs, ldmatrix, shared and
// global memory, ex2, RoPE-table loads, everything else).
//
// Why PTX rather than SASS: PTX keeps the loop structure NVVM built (one label per basic block, the
// loop latch a branch back to its header) in a documented, stable text format; SASS from
// `cuobjdump -sass` changes its syntax between toolkits and needs the same loop finding anyway. The
// counts are static (instructions in the loop body, each once), before ptxas schedules them: the
// ratios that matter here (ldmatrix per MMA, other work per MMA) come from fully unrolled tile code
// and survive ptxas unchanged.

export interface PtxEntry {
  /** Mangled name, as ptxas reports it. */
  readonly name: string;
  /** Threads per block from `.maxntid` (the kernel's __launch_bounds__), if declared. */
  readonly maxThreads?: number;
  /** Instruction and label lines of the body, trimmed, comments removed. */
  readonly lines: readonly string[];
}

/** A loop: the lines from its header label to its last backward branch, inclusive. */
export interface PtxLoop {
  readonly header: string;
  readonly first: number;
  readonly last: number;
}

export interface InstructionCounts {
  /** mma.sync / wgmma (tensor-core matrix multiply-accumulate). */
  readonly mma: number;
  readonly ldmatrix: number;
  /** ld.shared (plain loads from shared memory; ldmatrix not included). */
  readonly sharedLoads: number;
  /** st.shared and stmatrix. */
  readonly sharedStores: number;
  /** ld.global (register loads from global memory; cp.async not included). */
  readonly globalLoads: number;
  /** cp.async and cp.async.bulk (global → shared copies that bypass registers). */
  readonly cpAsync: number;
  readonly ex2: number;
  /** Loads of the RoPE cos/sin table or angle math: see isRopeWork. */
  readonly ropeLoads: number;
  /** Every other instruction (arithmetic, conversions, branches, barriers, address math). */
  readonly other: number;
  readonly total: number;
}

const LABEL = /^(\$?[A-Za-z_][\w$]*):$/;
const BACKWARD_CANDIDATE = /\bbra(?:\.uni)?\s+(\$?[A-Za-z_][\w$]*)\s*;/;

/** Splits a PTX module into its `.entry` functions (device functions are inlined in these kernels). */
export function parsePtxEntries(ptx: string): PtxEntry[] {
  const entries: PtxEntry[] = [];
  const text = ptx.split('\n');
  for (let i = 0; i < text.length; ++i) {
    const head = /^\s*(?:\.visible\s+|\.weak\s+)?\.entry\s+([\w$]+)\s*\(/.exec(text[i]!);
    if (!head) continue;
    let maxThreads: number | undefined;
    let j = i + 1;
    // Parameters, then performance directives, then the body's opening brace.
    for (; j < text.length && text[j]!.trim() !== '{'; ++j) {
      const ntid = /^\s*\.maxntid\s+(\d+)\s*,\s*(\d+)\s*,\s*(\d+)/.exec(text[j]!);
      if (ntid) maxThreads = Number(ntid[1]) * Number(ntid[2]) * Number(ntid[3]);
    }
    const lines: string[] = [];
    let depth = 0;
    for (; j < text.length; ++j) {
      const line = text[j]!.replace(/\/\/.*$/, '').trim();
      if (line === '') continue;
      // Inline asm may open its own { } scopes (with .reg declarations); the body ends at depth 0.
      if (line === '{') { depth += 1; continue; }
      if (line === '}') { depth -= 1; if (depth === 0) break; continue; }
      if (line.startsWith('.')) continue;   // .reg, .shared, .loc and other directives
      lines.push(line);
    }
    entries.push({ name: head[1]!, ...(maxThreads !== undefined ? { maxThreads } : {}), lines });
    i = j;
  }
  return entries;
}

/** Whether a line is an instruction (not a label). */
export function isInstruction(line: string): boolean {
  return !LABEL.test(line) && line.endsWith(';');
}

/**
 * Loops of an entry: a branch to a label above it closes a loop from that label (its header) to
 * the branch (its latch). Several branches back to one header (`continue`) make one loop that ends
 * at the last of them. NVVM lays a loop's blocks out contiguously between header and latch, so the
 * span is the loop body.
 */
export function findLoops(entry: PtxEntry): PtxLoop[] {
  const labels = new Map<string, number>();
  entry.lines.forEach((line, n) => {
    const m = LABEL.exec(line);
    if (m) labels.set(m[1]!, n);
  });
  const latch = new Map<string, number>();
  entry.lines.forEach((line, n) => {
    const m = BACKWARD_CANDIDATE.exec(line);
    if (!m) return;
    const target = labels.get(m[1]!);
    if (target !== undefined && target < n) latch.set(m[1]!, Math.max(latch.get(m[1]!) ?? n, n));
  });
  return [...latch.entries()].map(([header, last]) => ({ header, first: labels.get(header)!, last })).sort((a, b) => a.first - b.first);
}

const opcode = (line: string): string => line.replace(/^@!?%\w+\s+/, '').split(/\s+/)[0]!;

/**
 * RoPE work: a float2 load (`ld.global[.nc].v2.f32`, a generic `ld.v2.f32`, or `ld.shared.v2.f32`
 * for a table staged in shared memory) is how a kernel reads a (cos, sin) pair of the
 * host-computed table, and nothing else in an attention kernel's key loop loads float2 (K and V
 * are 16-bit data arriving by cp.async and read by ldmatrix; the softmax lives in registers and
 * shuffles); sin/cos instructions would be angles computed on the device.
 */
export function isRopeWork(line: string): boolean {
  const op = opcode(line);
  return /^ld(\.global(\.nc)?|\.shared)?\.v2\.f32$/.test(op) || /^(sin|cos)\./.test(op);
}

/** Counts the instructions of `lines` by kind. */
export function countInstructions(lines: readonly string[]): InstructionCounts {
  let mma = 0, ldmatrix = 0, sharedLoads = 0, sharedStores = 0, globalLoads = 0, cpAsync = 0, ex2 = 0, ropeLoads = 0, total = 0;
  for (const line of lines) {
    if (!isInstruction(line)) continue;
    total += 1;
    const op = opcode(line);
    if (isRopeWork(line)) ropeLoads += 1;
    if (/^(mma|wgmma\.mma_async)\./.test(op)) mma += 1;
    else if (op.startsWith('ldmatrix.')) ldmatrix += 1;
    else if (/^ld(\.volatile)?\.shared\./.test(op)) sharedLoads += 1;
    else if (/^st(\.volatile)?\.shared\./.test(op) || op.startsWith('stmatrix.')) sharedStores += 1;
    else if (/^ld\.global\./.test(op)) globalLoads += 1;
    else if (/^cp\.async\.(ca|cg|bulk)\b/.test(op) && !/^cp\.async\.bulk\.(commit|wait)/.test(op)) cpAsync += 1;
    else if (op.startsWith('ex2.')) ex2 += 1;
  }
  const named = mma + ldmatrix + sharedLoads + sharedStores + globalLoads + cpAsync + ex2;
  return { mma, ldmatrix, sharedLoads, sharedStores, globalLoads, cpAsync, ex2, ropeLoads, other: total - named, total };
}

export interface KeyLoops {
  /** The steady-state key loop: of the innermost loops that hold MMAs, the one with the most; on a tie, the leanest (fewest instructions: the unmasked path). */
  readonly loop: PtxLoop;
  readonly counts: InstructionCounts;
  /** Innermost MMA loops (one per region visit in a fused DCA kernel). */
  readonly keyLoops: number;
  /** RoPE work summed over every key loop, so no region's loop hides a rotation. */
  readonly ropeLoadsInKeyLoops: number;
}

/**
 * The key loops of an attention kernel: loops with MMA instructions that contain no other loop
 * with MMA instructions (a runtime loop over regions around them does not count; nested loops
 * without MMAs, such as a tile-load loop, are part of the key loop). Undefined when the entry has
 * no MMA in a loop (SIMT kernels, merge and cache kernels).
 */
export function findKeyLoops(entry: PtxEntry): KeyLoops | undefined {
  const loops = findLoops(entry).map((loop) => ({ loop, counts: countInstructions(entry.lines.slice(loop.first, loop.last + 1)) }));
  const withMma = loops.filter((l) => l.counts.mma > 0);
  const innermost = withMma.filter((outer) => !withMma.some((inner) => inner !== outer && inner.loop.first >= outer.loop.first && inner.loop.last <= outer.loop.last));
  if (innermost.length === 0) return undefined;
  const best = innermost.reduce((a, b) => (b.counts.mma > a.counts.mma || (b.counts.mma === a.counts.mma && b.counts.total < a.counts.total) ? b : a));
  return { loop: best.loop, counts: best.counts, keyLoops: innermost.length, ropeLoadsInKeyLoops: innermost.reduce((s, l) => s + l.counts.ropeLoads, 0) };
}
