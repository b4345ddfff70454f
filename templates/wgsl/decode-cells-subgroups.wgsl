// With subgroups a cell is the lanes of one row inside one subgroup, reduced by subgroupMax and
// subgroupAdd; only one value per cell goes through workgroup memory. A subgroup wider than a row's
// lanes holds `segments` cells side by side: each is reduced in turn, the other cells' lanes masked
// out. (`segments` is the same in every invocation, so every loop runs in uniform control flow.)
var<workgroup> lanes_taken: atomic<u32>;   // lane numbers handed out so far, subgroup by subgroup

fn cell_max(x: f32, segment: u32, segments: u32) -> f32 {
  var result = x;
  for (var t = 0u; t < segments; t++) {
    let m = subgroupMax(select(MASKED_SCORE, x, segment == t));
    if (segment == t) {
      result = m;
    }
  }
  return result;
}

fn cell_sum(x: f32, segment: u32, segments: u32) -> f32 {
  var result = x;
  for (var t = 0u; t < segments; t++) {
    let s = subgroupAdd(select(0.0, x, segment == t));
    if (segment == t) {
      result = s;
    }
  }
  return result;
}

fn cell_sum4(x: vec4<f32>, segment: u32, segments: u32) -> vec4<f32> {
  var result = x;
  for (var t = 0u; t < segments; t++) {
    let s = subgroupAdd(select(vec4<f32>(0.0), x, segment == t));
    if (segment == t) {
      result = s;
    }
  }
  return result;
}
