"""CellMap Segmentation Challenge workflow: test-crop manifest, prediction, submission packaging, local scoring.

Compatible with (but independent of) the ``cellmap-segmentation-challenge`` package: the manifest
format, the ``submission.zarr`` layout and the scoring definitions are those of its repository
(janelia-cellmap/cellmap-segmentation-challenge); each module names the file and function it follows.
"""
