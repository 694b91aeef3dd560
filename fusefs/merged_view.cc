// placeholder until the merged view lands
