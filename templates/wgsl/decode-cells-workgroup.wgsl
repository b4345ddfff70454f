// Without subgroups every lane is a cell of its own: the rows gather their lanes through workgroup
// memory alone.
fn cell_max(x: f32, segment: u32, segments: u32) -> f32 {
  return x;
}

fn cell_sum(x: f32, segment: u32, segments: u32) -> f32 {
  return x;
}

fn cell_sum4(x: vec4<f32>, segment: u32, segments: u32) -> vec4<f32> {
  return x;
}
