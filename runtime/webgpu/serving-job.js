// Serving jobs for an emitted WGSL launcher inside Deno: the cache append (new keys rotated into a
// paged KV cache) on raw tensors read from files, results written back as files. Loaded by
// runtime/webgpu/deno-host.js.

import { readBack, uploadFile } from './buffers.js';

export async function runCacheAppendJob(device, args, io) {
  const launcher = await import(new URL(`file://${args.launcher}`).href);
  const append = await launcher.createCacheAppend(device, args.options ?? {});
  const names = ['k', 'v', 'positions', 'slotMapping', 'kCache', 'vCache', ...(args.inputs.lengths ? ['lengths'] : [])];
  const buffers = Object.fromEntries(await Promise.all(names.map(async (name) => [name, await uploadFile(device, io, args.inputs[name])])));
  await append.run(buffers, args.shape);
  await io.writeFile(args.outputs.kCache, await readBack(device, buffers.kCache, args.cacheBytes));
  await io.writeFile(args.outputs.vCache, await readBack(device, buffers.vCache, args.cacheBytes));
  for (const b of Object.values(buffers)) b.destroy();
  return {};
}

/** Attention of q over a paged cache: the emitted launcher's createPagedAttention, once. */
export async function runPagedAttentionJob(device, args, io) {
  const launcher = await import(new URL(`file://${args.launcher}`).href);
  const attention = await launcher.createPagedAttention(device, args.options ?? {});
  const names = ['q', 'kCache', 'vCache', 'blockTable', 'seqLens', ...(args.inputs.cuSeqlensQ ? ['cuSeqlensQ'] : [])];
  const buffers = Object.fromEntries(await Promise.all(names.map(async (name) => [name, await uploadFile(device, io, args.inputs[name])])));
  // args.rows: query rows of the call (batch × queries, or the packed total).
  const outBytes = args.rows * args.shape.queryHeads * args.headDim * attention.elementBytes;
  const lseBytes = args.rows * args.shape.queryHeads * 4;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
  buffers.out = device.createBuffer({ size: Math.max(16, Math.ceil(outBytes / 4) * 4), usage });
  buffers.lse = device.createBuffer({ size: Math.max(16, lseBytes), usage });
  await attention.run(buffers, args.shape);
  await io.writeFile(args.outputs.out, await readBack(device, buffers.out, outBytes));
  await io.writeFile(args.outputs.lse, await readBack(device, buffers.lse, lseBytes));
  const split = attention.splitPlan(args.shape);
  for (const b of Object.values(buffers)) b.destroy();
  return { split: { ...split, loopCapped: attention.loopCapped, subgroups: attention.subgroups } };
}
