"""Pictures of EM slices: label composites, side-by-side panels, TensorBoard images, neuroglancer."""
