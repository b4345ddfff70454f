  let lane_order = lid;   // lanes numbered in invocation order
  let cell_width = 1u;    // lanes per cell: one
