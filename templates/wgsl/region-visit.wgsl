  // ---- Region {{regionName}}: {{regionSummary}} ----
  {
    // The region's keys for this query tile, within this workgroup's split.
    let key_begin = imax({{tileKeyBegin}}, split_first);
    let key_end = imin({{tileKeyEnd}}, split_last);
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
          if (j < i32(keys)) {
            let at = kv_row_base(batch, u32(j), kv_head);
            k_value = {{keyValue}};
            v_value = value4(at, d4);
          }
          k_tile[e] = k_value;
          v_tile[e] = v_value;
        }
        workgroupBarrier();
        // The whole tile lies inside region {{regionName}} for every row: no element mask.
        let unmasked = {{tileUnmasked}};
        var tile_max = MASKED_SCORE;
        for (var jj = 0u; jj < BLOCK_K; jj++) {
          var s = 0.0;
          for (var d4 = 0u; d4 < HEAD_VEC4; d4++) {
            s += dot(q_rot[d4], k_tile[jj * HEAD_VEC4 + d4]);
          }
          s *= logit_scale;
          if (!unmasked && !visible_{{regionIdent}}(i, key_tile + i32(jj))) {
            s = MASKED_SCORE;
          }
          scores[jj] = s;
          tile_max = max(tile_max, s);
        }
        if (tile_max > MASKED_SCORE) {   // else no key of this tile is visible to this row
          let m_new = max(state.m, tile_max);
          let alpha = exp(state.m - m_new);
          var tile_sum = 0.0;
          for (var jj = 0u; jj < BLOCK_K; jj++) {
            let p = select(exp(scores[jj] - m_new), 0.0, scores[jj] == MASKED_SCORE);
            scores[jj] = p;
            tile_sum += p;
          }
          state.l = state.l * alpha + tile_sum;
          for (var d4 = 0u; d4 < HEAD_VEC4; d4++) {
            var a = acc[d4] * alpha;
            for (var jj = 0u; jj < BLOCK_K; jj++) {
              a += scores[jj] * v_tile[jj * HEAD_VEC4 + d4];
            }
            acc[d4] = a;
          }
          state.m = m_new;
        }
      }
    }
  }
