  // ---- Region {{regionName}}: {{regionSummary}} ----
  {
    let key_begin = {{tileKeyBegin}};
    let key_end = {{tileKeyEnd}};
    if (key_begin <= key_end) {
      let query_position = {{queryPosition}};
      for (var d4 = 0u; d4 < HEAD_VEC4; d4++) {
        q_rot[d4] = rotated_query4(q_base, d4, query_position);
      }
      for (var key_tile = (key_begin / i32(BLOCK_K)) * i32(BLOCK_K); key_tile <= key_end; key_tile += i32(BLOCK_K)) {
        workgroupBarrier();
        for (var e = lid; e < BLOCK_K * HEAD_VEC4; e += BLOCK_Q) {
          let j = key_tile + i32(e / HEAD_VEC4);
          let d4 = e % HEAD_VEC4;
          var k_value = vec4<f32>(0.0);
          var v_value = vec4<f32>(0.0);
          if (j < i32(shape.keys)) {
            let at = kv_base + u32(j) * kv_stride;
            k_value = {{keyValue}};
            v_value = value4(at, d4);
          }
          k_tile[e] = k_value;
          v_tile[e] = v_value;
        }
        workgroupBarrier();
        // Scores of this row against the tile's BLOCK_K keys, one named accumulator per key.
{{scoreDeclarations}}
        for (var d4 = 0u; d4 < HEAD_VEC4; d4++) {
          let qv = q_rot[d4];
{{scoreAccumulate}}
        }
{{scoreScale}}
        // The whole tile lies inside region {{regionName}} for every row: no element mask.
        let unmasked = {{tileUnmasked}};
        if (!unmasked) {
{{scoreMask}}
        }
        let tile_max = {{tileMax}};
        if (tile_max > NEG_BIG) {   // else no key of this tile is visible to this row
          let m_new = max(m, tile_max);
          let alpha = exp(m - m_new);
{{probabilities}}
          l = l * alpha + {{probabilitySum}};
          for (var d4 = 0u; d4 < HEAD_VEC4; d4++) {
            acc[d4] = acc[d4] * alpha{{valueAccumulate}};
          }
          m = m_new;
        }
      }
    }
  }
