// ---- Integer helpers and RoPE, shared by every kernel that places positions ----
fn imin(a: i32, b: i32) -> i32 { return min(a, b); }
fn imax(a: i32, b: i32) -> i32 { return max(a, b); }
fn floor_div(a: i32, b: i32) -> i32 {
  let t = a / b;
  return select(t, t - 1, (a % b != 0) && ((a < 0) != (b < 0)));
}

// cos and sin of position × θ^(−2·pair/ROTARY_DIM), from host-computed float64 tables (exact at
// large positions, where f32 position × frequency is not).
fn rope_cos_sin(position: i32, pair: u32) -> vec2<f32> {
  let p = u32(position);
  let fine = rope[(p & ((1u << ROPE_FINE_BITS) - 1u)) * ROPE_PAIRS + pair];
  let coarse = rope[((1u << ROPE_FINE_BITS) + (p >> ROPE_FINE_BITS)) * ROPE_PAIRS + pair];
  return vec2<f32>(coarse.x * fine.x - coarse.y * fine.y, coarse.y * fine.x + coarse.x * fine.y);
}

// {{ropeStyleName}}: dimension d rotates with rope_partner(d) at frequency rope_pair(d).
{{ropeLayout}}
