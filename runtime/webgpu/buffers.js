// GPU buffer helpers shared by the WebGPU jobs: upload a raw little-endian file into a storage
// buffer (writeBuffer needs 4-byte multiples, so a ragged tail goes up padded) and read one back.

export function align4(n) {
  return Math.ceil(n / 4) * 4;
}

export async function uploadFile(device, io, path, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC) {
  const bytes = await io.readFile(path);
  return uploadBytes(device, bytes, usage);
}

export function uploadBytes(device, bytes, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC) {
  const buffer = device.createBuffer({ size: Math.max(16, align4(bytes.byteLength)), usage });
  const whole = bytes.byteLength - (bytes.byteLength % 4);
  if (whole > 0) device.queue.writeBuffer(buffer, 0, bytes.buffer, bytes.byteOffset, whole);
  if (whole !== bytes.byteLength) {
    const tail = new Uint8Array(4);
    tail.set(bytes.subarray(whole));
    device.queue.writeBuffer(buffer, whole, tail);
  }
  return buffer;
}

export async function readBack(device, buffer, bytes) {
  const staging = device.createBuffer({ size: Math.max(4, align4(bytes)), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, Math.max(4, align4(bytes)));
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const copy = new Uint8Array(staging.getMappedRange().slice(0, bytes));
  staging.unmap();
  staging.destroy();
  return copy;
}
