// Runs an emitted WGSL launcher inside Deno on raw tensors: reads q, k, v (little-endian f32 or f16
// bytes) from files, creates the buffers, runs the launcher's attention (once, or repeatedly for
// `dcagen bench`), and writes out (storage dtype) and lse (f32). Loaded by runtime/webgpu/deno-host.js.

import { align4, readBack, uploadFile } from './buffers.js';

export async function runAttentionJob(device, args, io) {
  const launcher = await import(new URL(`file://${args.launcher}`).href);
  const attention = await launcher.createAttention(device, args.options ?? {});
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  const [q, k, v] = await Promise.all([args.inputs.q, args.inputs.k, args.inputs.v].map((path) => uploadFile(device, io, path)));
  const { batch, queries, queryHeads, headDim } = args.shape;
  const outBytes = batch * queries * queryHeads * headDim * attention.elementBytes;
  const lseBytes = batch * queryHeads * queries * 4;
  const out = device.createBuffer({ size: Math.max(16, align4(outBytes)), usage });
  const lse = device.createBuffer({ size: Math.max(16, align4(lseBytes)), usage });
  const buffers = { q, k, v, out, lse };

  const times = [];
  const repeats = args.repeats ?? 1;
  for (let r = 0; r < (args.warmup ?? 0); r++) await attention.run(buffers, args.shape);
  for (let r = 0; r < repeats; r++) {
    const start = performance.now();
    await attention.run(buffers, args.shape);
    times.push(performance.now() - start);
  }

  if (args.outputs) {
    await io.writeFile(args.outputs.out, await readBack(device, out, outBytes));
    await io.writeFile(args.outputs.lse, await readBack(device, lse, lseBytes));
  }
  for (const b of [q, k, v, out, lse]) b.destroy();
  // How the launcher ran the call: kernel kind, splits, and the adapter traits that shaped it.
  return { times, split: { ...attention.splitPlan(args.shape), loopCapped: attention.loopCapped, subgroups: attention.subgroups } };
}

/**
 * Times several launchers on the same inputs, interleaved (A B C A B C …) so that drift in the
 * adapter's speed hits them alike. `launcherOptions[n]`, when given, adds to `options` for launcher
 * n (e.g. a forced kernel kind). Returns each launcher's times in milliseconds.
 */
export async function benchAttentionJob(device, args, io) {
  const attentions = [];
  for (const [n, path] of args.launchers.entries()) {
    const launcher = await import(new URL(`file://${path}`).href);
    attentions.push(await launcher.createAttention(device, { ...(args.options ?? {}), ...(args.launcherOptions?.[n] ?? {}) }));
  }
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const [q, k, v] = await Promise.all([args.inputs.q, args.inputs.k, args.inputs.v].map((path) => uploadFile(device, io, path)));
  const { batch, queries, queryHeads, headDim } = args.shape;
  const out = device.createBuffer({ size: align4(batch * queries * queryHeads * headDim * attentions[0].elementBytes), usage });
  const lse = device.createBuffer({ size: align4(batch * queryHeads * queries * 4), usage });
  const buffers = { q, k, v, out, lse };
  for (const a of attentions) await a.run(buffers, args.shape); // warm-up: pipelines compiled, tables built
  const times = attentions.map(() => []);
  for (let r = 0; r < args.repeats; r++) {
    for (const [n, a] of attentions.entries()) {
      const start = performance.now();
      await a.run(buffers, args.shape);
      times[n].push(performance.now() - start);
    }
  }
  for (const b of [q, k, v, out, lse]) b.destroy();
  return { times, plans: attentions.map((a) => a.splitPlan(args.shape)) };
}
