// The in-memory tensor: a shape and a flat C-order array. Storage is float64 in the reference and
// float32 at process boundaries.

export type TensorData = Float32Array | Float64Array;

export interface Tensor<D extends TensorData = TensorData> {
  readonly shape: readonly number[];
  readonly data: D;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function tensor<D extends TensorData>(shape: readonly number[], data: D): Tensor<D> {
  if (elementCount(shape) !== data.length) throw new Error(`shape [${shape.join(', ')}] does not match ${data.length} elements`);
  return { shape: [...shape], data };
}
