// The DCA paper's Figure 2, written out by hand for the tests.

// The paper's Figure 2 (c = 10, s = 6, w = 4) is C = 9, W = 3, L = 6, 12 tokens. Written out from
// DESIGN.md §1: intra r(i) − r(j); successive min(r(i) + L, C) − r(j); inter min(2L − 1, C) − r(j).
const _ = null;
export const FIGURE_2: (number | null)[][] = [
  [0, _, _, _, _, _, _, _, _, _, _, _],
  [1, 0, _, _, _, _, _, _, _, _, _, _],
  [2, 1, 0, _, _, _, _, _, _, _, _, _],
  [3, 2, 1, 0, _, _, _, _, _, _, _, _],
  [4, 3, 2, 1, 0, _, _, _, _, _, _, _],
  [5, 4, 3, 2, 1, 0, _, _, _, _, _, _],
  [6, 5, 4, 3, 2, 1, 0, _, _, _, _, _],
  [7, 6, 5, 4, 3, 2, 1, 0, _, _, _, _],
  [8, 7, 6, 5, 4, 3, 2, 1, 0, _, _, _],
  [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, _, _],
  [9, 8, 7, 6, 5, 4, 4, 3, 2, 1, 0, _],
  [9, 8, 7, 6, 5, 4, 5, 4, 3, 2, 1, 0],
];
const I = 'intra';
const S = 'successive';
export const FIGURE_2_REGIONS: (string | null)[][] = [
  [I, _, _, _, _, _, _, _, _, _, _, _],
  [I, I, _, _, _, _, _, _, _, _, _, _],
  [I, I, I, _, _, _, _, _, _, _, _, _],
  [I, I, I, I, _, _, _, _, _, _, _, _],
  [I, I, I, I, I, _, _, _, _, _, _, _],
  [I, I, I, I, I, I, _, _, _, _, _, _],
  [S, S, S, S, S, S, I, _, _, _, _, _],
  [S, S, S, S, S, S, I, I, _, _, _, _],
  [S, S, S, S, S, S, I, I, I, _, _, _],
  [S, S, S, S, S, S, I, I, I, I, _, _],
  [S, S, S, S, S, S, I, I, I, I, I, _],
  [S, S, S, S, S, S, I, I, I, I, I, I],
];
