// The error heat map: |kernel − reference| for every output element of the first batch entry,
// one row per query, one column per (query head, dimension). The scale is logarithmic, because a
// correct f32 kernel sits orders of magnitude below its tolerance: white up to tolerance·10⁻⁴,
// reaching full red at the tolerance, dark red above it (a failure should jump out).

const DECADES = 4;

export function drawErrorMap(canvas: HTMLCanvasElement, error: Float64Array, rows: number, columns: number, tolerance: number): void {
  const scale = Math.max(1, Math.floor(Math.min(640 / columns, 320 / rows)));
  canvas.width = columns * scale;
  canvas.height = rows * scale;
  const context = canvas.getContext('2d');
  if (context === null) return;
  const image = context.createImageData(columns, rows);
  for (let k = 0; k < rows * columns; k++) {
    const e = error[k]!;
    const over = !(e <= tolerance);
    const t = e > 0 ? Math.min(1, Math.max(0, (Math.log10(e / tolerance) + DECADES) / DECADES)) : 0;
    image.data[4 * k] = over ? 120 : 255;
    image.data[4 * k + 1] = over ? 0 : Math.round(255 * (1 - t));
    image.data[4 * k + 2] = over ? 0 : Math.round(255 * (1 - t));
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

export function errorMapCaption(tolerance: number): string {
  return `|kernel − reference| per output element (rows: queries; columns: query heads × head dim), log scale: white ≤ ${(tolerance * 10 ** -DECADES).toExponential(0)}, red = tolerance ${tolerance.toExponential(0)}, dark red above it`;
}
