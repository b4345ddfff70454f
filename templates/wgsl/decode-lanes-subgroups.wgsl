  // Lanes are numbered subgroup by subgroup, so that each subgroup holds consecutive lanes whatever
  // order the device groups invocations in: the first invocation of each subgroup reserves a block of
  // numbers. Every subgroup is full (WORKGROUP is a multiple of every subgroup size up to it, and a
  // wider subgroup holds the whole workgroup), so blocks start at multiples of cell_width.
  let subgroup_lanes = subgroupAdd(1u);
  var block_start = 0u;
  if (subgroupElect()) {
    block_start = atomicAdd(&lanes_taken, subgroup_lanes);
  }
  let lane_order = subgroupBroadcastFirst(block_start) + subgroupExclusiveAdd(1u);
  let cell_width = min(subgroup_size, WORKGROUP);   // lanes per subgroup
