// ---- Inputs, shared by the prefill and decode kernels: bindings, RoPE, K/V addressing, positions ----
// (one bind group layout for both kernels, so the launcher binds the same buffers to either)

// Pattern parameters
{{patternConstants}}

@group(0) @binding(0) var<uniform> params: AttentionParams;
@group(0) @binding(1) var<storage, read> q: array<{{storage}}>;        // (batch, queries, query_heads, HEAD_DIM)
@group(0) @binding(4) var<storage, read> rope: array<vec2<f32>>;       // (cos, sin): fine rows, then coarse rows
@group(0) @binding(5) var<storage, read_write> out: array<{{storage}}>; // like q
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;          // (batch, query_heads, queries), natural log
@group(0) @binding(7) var<storage, read_write> partial: array<f32>;      // see partial_out_index / partial_lse_index

{{ropeFunctions}}
// Element d of a query or key vector rotated to `position`; `base` is the vector's first element.
fn rotated_query(base: u32, d: u32, position: i32) -> f32 {
  let x = f32(q[base + d]);
  if (d >= ROTARY_DIM) {
    return x;
  }
  let cs = rope_cos_sin(position, rope_pair(d));
  return x * cs.x + rope_sign(d) * f32(q[base + rope_partner(d)]) * cs.y;
}

fn rotated_key(base: u32, d: u32, position: i32) -> f32 {
  let x = f32(k[base + d]);
  if (d >= ROTARY_DIM) {
    return x;
  }
  let cs = rope_cos_sin(position, rope_pair(d));
  return x * cs.x + rope_sign(d) * f32(k[base + rope_partner(d)]) * cs.y;
}

// Four consecutive elements (4·d4 …) as a vec4.
fn rotated_query4(base: u32, d4: u32, position: i32) -> vec4<f32> {
  let d = 4u * d4;
  return vec4<f32>(rotated_query(base, d, position), rotated_query(base, d + 1u, position),
                   rotated_query(base, d + 2u, position), rotated_query(base, d + 3u, position));
}

fn rotated_key4(base: u32, d4: u32, position: i32) -> vec4<f32> {
  let d = 4u * d4;
  return vec4<f32>(rotated_key(base, d, position), rotated_key(base, d + 1u, position),
                   rotated_key(base, d + 2u, position), rotated_key(base, d + 3u, position));
}

fn key4(base: u32, d4: u32) -> vec4<f32> {
  let d = base + 4u * d4;
  return vec4<f32>(f32(k[d]), f32(k[d + 1u]), f32(k[d + 2u]), f32(k[d + 3u]));
}

fn value4(base: u32, d4: u32) -> vec4<f32> {
  let d = base + 4u * d4;
  return vec4<f32>(f32(v[d]), f32(v[d + 1u]), f32(v[d + 2u]), f32(v[d + 3u]));
}

{{kvAddressing}}

// ---- Positions and key ranges, rendered from the pattern ----
{{positionFunctions}}

