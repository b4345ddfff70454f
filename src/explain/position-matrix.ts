// The position matrix a person looks at: for every causal pair, the region that owns it and the
// query − key distance RoPE sees there. `dcagen explain` prints it (like the DCA paper's Figure 2),
// as JSON, or as an SVG heatmap.

import { maskAllows, owningRegion, type CompiledPattern } from '../dsl/instantiate.js';

export interface PositionMatrix {
  /** relative[i][j] = query position − key position for j ≤ i; null above the diagonal or when masked out. */
  readonly relative: (number | null)[][];
  readonly region: (string | null)[][];
  /** The query and key positions RoPE sees for (i, j) in its region (relative = query − key); null where relative is. */
  readonly query: (number | null)[][];
  readonly key: (number | null)[][];
}

export function positionMatrix(pattern: CompiledPattern, seqLen: number): PositionMatrix {
  const relative: (number | null)[][] = [];
  const region: (string | null)[][] = [];
  const query: (number | null)[][] = [];
  const key: (number | null)[][] = [];
  for (let i = 0; i < seqLen; i++) {
    const rel: (number | null)[] = [];
    const reg: (string | null)[] = [];
    const qs: (number | null)[] = [];
    const ks: (number | null)[] = [];
    for (let j = 0; j < seqLen; j++) {
      const owner = j <= i ? owningRegion(pattern, i, j) : undefined;
      if (owner === undefined || !maskAllows(owner.definition, pattern.params, i, j)) {
        rel.push(null);
        reg.push(null);
        qs.push(null);
        ks.push(null);
        continue;
      }
      const q = owner.definition.queryPosition(i, pattern.params);
      const k = (owner.definition.keyPosition ?? pattern.definition.keyPosition)(j, pattern.params);
      rel.push(q - k);
      reg.push(owner.name);
      qs.push(q);
      ks.push(k);
    }
    relative.push(rel);
    region.push(reg);
    query.push(qs);
    key.push(ks);
  }
  return { relative, region, query, key };
}

/** Distinct one-letter markers for the regions, in declaration order. */
export function regionMarkers(pattern: CompiledPattern): Map<string, string> {
  const used = new Set<string>();
  const markers = new Map<string, string>();
  for (const r of pattern.regions) {
    const candidates = [...r.name.toUpperCase(), ...'ABCDEFGHJKLMNOPQRSTUVWXYZ'];
    const letter = candidates.find((c) => /[A-Z]/.test(c) && !used.has(c)) ?? '?';
    used.add(letter);
    markers.set(r.name, letter);
  }
  return markers;
}

export function formatPositionMatrix(pattern: CompiledPattern, m: PositionMatrix): string {
  const markers = regionMarkers(pattern);
  const n = m.relative.length;
  const width = Math.max(2, ...m.relative.flat().map((v) => (v === null ? 1 : String(v).length))) + 1;
  const params = Object.entries(pattern.params).map(([k, v]) => `${k}=${v}`).join(' ');
  const lines = [`pattern ${pattern.name}${params ? ` (${params})` : ''}, ${n} tokens: query position − key position, row i = query, column j = key`];
  const header = ' '.repeat(5) + Array.from({ length: n }, (_, j) => String(j).padStart(width)).join('');
  lines.push(header);
  for (let i = 0; i < n; i++) {
    const cells = m.relative[i]!.map((v) => (v === null ? '·' : String(v)).padStart(width)).join('');
    lines.push(`${String(i).padStart(4)} ${cells}`);
  }
  lines.push('', 'regions: ' + [...markers].map(([name, letter]) => `${letter} = ${name}`).join(', '));
  lines.push(header);
  for (let i = 0; i < n; i++) {
    const cells = m.region[i]!.map((r) => (r === null ? '·' : markers.get(r)!).padStart(width)).join('');
    lines.push(`${String(i).padStart(4)} ${cells}`);
  }
  return lines.join('\n');
}

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#b07aa1', '#76b7b2'];

/**
 * A heatmap: cell colour = region, lightness = relative distance, the number written in each cell.
 * Each cell's title (what a viewer shows on hover) and data attributes give i, j, the region and
 * the query and key positions, so a page can read the cells back.
 */
export function positionMatrixSvg(pattern: CompiledPattern, m: PositionMatrix): string {
  const n = m.relative.length;
  const cell = n <= 32 ? 28 : n <= 128 ? 8 : Math.max(1, Math.floor(1024 / n));
  const margin = 40;
  const legend = 24 * pattern.regions.length + 16;
  const size = margin + n * cell;
  const maxRel = Math.max(1, ...m.relative.flat().filter((v): v is number => v !== null));
  const colour = new Map(pattern.regions.map((r, k) => [r.name, PALETTE[k % PALETTE.length]!]));
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${size + 8}" height="${size + legend}" font-family="sans-serif" font-size="${Math.min(11, cell * 0.45)}">`);
  parts.push(`<title>${pattern.name}: query position − key position</title>`);
  parts.push(`<rect width="100%" height="100%" fill="white"/>`);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const r = m.region[i]![j];
      const v = m.relative[i]![j];
      const qp = m.query[i]![j];
      const kp = m.key[i]![j];
      if (r === null || v === null || r === undefined || v === undefined) continue;
      const opacity = (0.25 + 0.75 * (v / maxRel)).toFixed(3);
      const x = margin + j * cell;
      const y = margin + i * cell;
      parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${colour.get(r)}" fill-opacity="${opacity}" stroke="white" stroke-width="${cell >= 8 ? 0.5 : 0}" class="cell" data-i="${i}" data-j="${j}" data-region="${r}" data-query="${qp}" data-key="${kp}" data-relative="${v}"><title>i=${i} j=${j} ${r}: ${v} (query ${qp} − key ${kp})</title></rect>`);
      if (cell >= 16) parts.push(`<text x="${x + cell / 2}" y="${y + cell / 2 + 4}" text-anchor="middle">${v}</text>`);
    }
  }
  if (cell >= 16) {
    for (let k = 0; k < n; k++) {
      parts.push(`<text x="${margin + k * cell + cell / 2}" y="${margin - 6}" text-anchor="middle" fill="#555">${k}</text>`);
      parts.push(`<text x="${margin - 6}" y="${margin + k * cell + cell / 2 + 4}" text-anchor="end" fill="#555">${k}</text>`);
    }
  }
  parts.push(`<text x="${margin}" y="14" font-size="12">key j →   query i ↓   ${pattern.name}</text>`);
  pattern.regions.forEach((r, k) => {
    const y = size + 12 + 24 * k;
    parts.push(`<rect x="${margin}" y="${y}" width="16" height="16" fill="${colour.get(r.name)}"/><text x="${margin + 22}" y="${y + 12}" font-size="12">${r.name}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
