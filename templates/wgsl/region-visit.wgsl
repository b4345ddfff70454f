  // ---- Region {{regionName}}: {{regionSummary}} ----
  {
    let key_begin = {{tileKeyBegin}};
    let key_end = {{tileKeyEnd}};
    if (key_begin <= key_end) {
      let query_position = {{queryPosition}};
      for (var d = 0u; d < HEAD_DIM; d++) {
        q_rot[d] = rotated_query(q_base, d, query_position);
      }
      for (var key_tile = (key_begin / i32(BLOCK_K)) * i32(BLOCK_K); key_tile <= key_end; key_tile += i32(BLOCK_K)) {
        workgroupBarrier();
        for (var e = lid; e < BLOCK_K * HEAD_DIM; e += BLOCK_Q) {
          let j = key_tile + i32(e / HEAD_DIM);
          let d = e % HEAD_DIM;
          var k_value = 0.0;
          var v_value = 0.0;
          if (j < i32(shape.keys)) {
            let at = kv_base + u32(j) * kv_stride;
            k_value = {{keyValue}};
            v_value = f32(v[at + d]);
          }
          k_tile[e] = k_value;
          v_tile[e] = v_value;
        }
        workgroupBarrier();
        // The whole tile lies inside region {{regionName}} for every row: no element mask.
        let unmasked = {{tileUnmasked}};
        if (!unmasked) {
          for (var jj = 0u; jj < BLOCK_K; jj++) {
            keep[jj] = visible_{{ident}}(i, key_tile + i32(jj));
          }
        }
        accumulate_tile(&q_rot, &acc, &m, &l, &keep, !unmasked);
      }
    }
  }
