// The error heat map: |kernel − reference| for every output element of the first batch entry,
// one row per query, one column per (query head, dimension); white is exact, full red is the
// storage type's tolerance or worse.

export function drawErrorMap(canvas: HTMLCanvasElement, error: Float64Array, rows: number, columns: number, tolerance: number): void {
  const scale = Math.max(1, Math.floor(Math.min(640 / columns, 320 / rows)));
  canvas.width = columns * scale;
  canvas.height = rows * scale;
  const context = canvas.getContext('2d');
  if (context === null) return;
  const image = context.createImageData(columns, rows);
  for (let k = 0; k < rows * columns; k++) {
    const t = Math.min(1, error[k]! / tolerance);
    image.data[4 * k] = 255;
    image.data[4 * k + 1] = Math.round(255 * (1 - t));
    image.data[4 * k + 2] = Math.round(255 * (1 - t));
    image.data[4 * k + 3] = 255;
  }
  // Draw at 1:1 on a scratch canvas, then scale up without smoothing so cells stay sharp.
  const scratch = document.createElement('canvas');
  scratch.width = columns;
  scratch.height = rows;
  scratch.getContext('2d')?.putImageData(image, 0, 0);
  context.imageSmoothingEnabled = false;
  context.drawImage(scratch, 0, 0, canvas.width, canvas.height);
}
