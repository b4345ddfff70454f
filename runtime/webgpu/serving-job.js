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
