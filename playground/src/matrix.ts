// The position matrix and region map of the current pattern, drawn by the same function as
// `dcagen explain --svg` (src/explain/position-matrix.ts). Hovering a cell names i, j, the query
// and key positions RoPE sees there and the region, read from the cell's data attributes.

import type { CompiledPattern } from '../../src/dsl/instantiate.js';
import { positionMatrix, positionMatrixSvg } from '../../src/explain/position-matrix.js';

export function drawMatrix(container: HTMLElement, hover: HTMLElement, pattern: CompiledPattern, size: number): void {
  container.innerHTML = positionMatrixSvg(pattern, positionMatrix(pattern, size));
  container.classList.remove('stale');
  hover.textContent = 'hover a cell: i, j, query position, key position, region';
}

/** One listener for the container's lifetime: the SVG inside is replaced on every redraw. */
export function followHover(container: HTMLElement, hover: HTMLElement): void {
  container.addEventListener('mouseover', (event) => {
    const cell = (event.target as Element).closest('rect.cell');
    if (cell === null) return;
    const d = (name: string): string => cell.getAttribute(`data-${name}`) ?? '?';
    hover.textContent = `i = ${d('i')}, j = ${d('j')}: query position ${d('query')}, key position ${d('key')} (distance ${d('relative')}), region ${d('region')}`;
  });
}
