// Compiles WGSL modules with Tint, the compiler Chromium and Dawn ship, through Dawn for Node (npm
// `webgpu`) on Dawn's Null backend, which offers shader-f16 and subgroups without a GPU. Reads a
// JSON array of { name, code } on stdin; prints a JSON array of { name, errors } on stdout.
// Runs in its own process and exits explicitly: the native module is not torn down cleanly.
//
//   node runtime/webgpu/tint-check.mjs < modules.json
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const modules = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const adapter = await create(['backend=null']).requestAdapter();
if (adapter === null) {
  process.stderr.write("tint-check: Dawn's Null backend gave no adapter\n");
  process.exit(3);
}
const device = await adapter.requestDevice({ requiredFeatures: ['shader-f16', 'subgroups'] });
const results = [];
for (const { name, code } of modules) {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label: name, code });
  const errors = (await module.getCompilationInfo()).messages
    .filter((m) => m.type === 'error')
    .map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
  const scope = await device.popErrorScope();
  if (errors.length === 0 && scope !== null) errors.push(scope.message);
  results.push({ name, errors });
}
process.stdout.write(JSON.stringify(results));
process.exit(0);
