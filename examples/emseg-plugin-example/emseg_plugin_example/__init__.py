"""Example emseg-plugins plugin package: ``tiny_unet`` (model), ``soft_l1`` (loss), ``blobs`` (dataset)."""
