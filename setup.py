"""emseg-plugins: install with `pip install -c constraints.txt -e .` (see README.md)."""
from pathlib import Path

from setuptools import find_packages, setup

# The plugin contract: built-in plugins register exactly as third-party ones do, through these groups.
# Each entry maps a plugin name to its builder `build(cfg) -> object` (configs: `add_config(cfg)`).
ENTRY_POINTS = {
    "console_scripts": [
        "pytc-train = emseg_plugins.cli.train:main",
        "emseg = emseg_plugins.cli.main:main",
    ],
    "emseg_plugins.models": [
        "joenet = emseg_plugins.models.joenet:build_joenet",
        "monai_basic_unet = emseg_plugins.models.monai_nets:build_monai_basic_unet",
        "monai_unet = emseg_plugins.models.monai_nets:build_monai_unet",
        "mednext = emseg_plugins.models.monai_nets:build_mednext",
        "unetv3 = emseg_plugins.models.unetv3:build_unetv3",
        "unet2d_ebd = emseg_plugins.models.embedding:build_unet2d_ebd",
        "unetv3_ebd = emseg_plugins.models.embedding:build_unetv3_ebd",
        "unetv3_ebd2 = emseg_plugins.models.embedding:build_unetv3_ebd2",
    ],
    "emseg_plugins.losses": [
        "dice_bce = emseg_plugins.losses.dice_bce:build_dice_bce",
        "dice = emseg_plugins.losses.region:build_dice",
        "tversky = emseg_plugins.losses.region:build_tversky",
        "focal = emseg_plugins.losses.region:build_focal",
        "combo = emseg_plugins.losses.region:build_combo",
        "per_class_combo = emseg_plugins.losses.per_class_combo:build_per_class_combo",
        "ohem = emseg_plugins.losses.ohem:build_ohem",
        "discriminative = emseg_plugins.losses.discriminative:build_discriminative",
        "masked = emseg_plugins.losses.masked:build_masked",
        "bce = emseg_plugins.losses.bce:build_bce",
    ],
    "emseg_plugins.datasets": [
        "synthetic = emseg_plugins.datasets.synthetic:build_synthetic",
        "volume = emseg_plugins.datasets.volume:build_volume",
        "jarvis = emseg_plugins.datasets.jarvis:build_jarvis",
        "cellmap = emseg_plugins.datasets.cellmap:build_cellmap",
    ],
    # Config nodes live in torch-free modules: every config load applies them all (`emseg config --keys` stays fast).
    "emseg_plugins.configs": [
        "joenet = emseg_plugins.models.config_nodes:add_joenet_config",
        "monai_basic_unet = emseg_plugins.models.config_nodes:add_monai_basic_unet_config",
        "monai_unet = emseg_plugins.models.config_nodes:add_monai_unet_config",
        "mednext = emseg_plugins.models.config_nodes:add_mednext_config",
        "unetv3 = emseg_plugins.models.config_nodes:add_unetv3_config",
        "embedding = emseg_plugins.models.config_nodes:add_embedding_config",
        "dice_bce = emseg_plugins.losses.config_nodes:add_dice_bce_config",
        "dice = emseg_plugins.losses.config_nodes:add_dice_config",
        "tversky = emseg_plugins.losses.config_nodes:add_tversky_config",
        "focal = emseg_plugins.losses.config_nodes:add_focal_config",
        "combo = emseg_plugins.losses.config_nodes:add_combo_config",
        "per_class_combo = emseg_plugins.losses.config_nodes:add_per_class_combo_config",
        "ohem = emseg_plugins.losses.config_nodes:add_ohem_config",
        "discriminative = emseg_plugins.losses.config_nodes:add_discriminative_config",
        "masked = emseg_plugins.losses.config_nodes:add_masked_config",
        "synthetic = emseg_plugins.datasets.config_nodes:add_synthetic_config",
        "volume = emseg_plugins.datasets.config_nodes:add_volume_config",
        "jarvis = emseg_plugins.datasets.config_nodes:add_jarvis_config",
        "cellmap = emseg_plugins.datasets.config_nodes:add_cellmap_config",
        "cellmap_challenge = emseg_plugins.challenge.config:add_challenge_config",
    ],
    "emseg_plugins.targets": [
        "binary = emseg_plugins.targets:build_binary",
        "contour = emseg_plugins.targets:build_contour",
        "distance = emseg_plugins.targets:build_distance",
        "affinity = emseg_plugins.targets:build_affinity",
    ],
    "emseg_plugins.decoders": [
        "cc = emseg_plugins.postprocess.decoders:build_cc",
        "watershed = emseg_plugins.postprocess.decoders:build_watershed",
        "bc_watershed = emseg_plugins.postprocess.decoders:build_bc_watershed",
        "bcd_watershed = emseg_plugins.postprocess.decoders:build_bcd_watershed",
        "mutex_watershed = emseg_plugins.postprocess.decoders:build_mutex_watershed",
    ],
    # Providers: other frameworks' plugins under a name prefix (the entry-point name), imported only when a
    # name with that prefix is looked up or a registry is listed in full.
    "emseg_plugins.providers": [
        "pytc = emseg_plugins.bridges.pytc:PROVIDER",
    ],
}

setup(
    name="emseg-plugins",
    version="0.1.0",
    description="Plugin-based deep-learning segmentation of electron-microscopy volumes, extending PyTorch Connectomics",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["emseg_plugins", "emseg_plugins.*"]),
    package_data={
        "emseg_plugins.datasets": ["cellmap_classes.csv"],
        "emseg_plugins.challenge": ["test_crop_manifest.csv", "tested_classes.csv"],
        "emseg_plugins.scaffold": ["templates/*.tmpl"],
    },
    install_requires=[
        "torch>=2.2",
        "torchvision>=0.17",
        "numpy>=1.24",
        "scipy>=1.10",
        "monai>=1.3",
        "pytorch-lightning>=2.2,<3",
        "torchmetrics>=1.0",
        "yacs>=0.1.8",
        "pyyaml>=6",
        "tensorboardX>=2.6",
        "tensorboard>=2.14",
        "h5py>=3.8",
        "zarr>=2.16,<3",
        "tqdm>=4.60",
        "pillow>=9",
        "matplotlib>=3.7",
        "cellmap-data>=2025.1",
        "cloud-volume>=10",
        "tifffile>=2023.1",
        "scikit-learn>=1.3",  # mean-shift clustering of instance embeddings
        "scikit-image>=0.21",  # seeded watershed
        "connected-components-3d>=3.12",
        "fastremap>=1.14",
        "edt>=2.4",  # multi-label anisotropic distance transforms (distance targets)
        "fastmorph>=1.2",  # multi-label erosion (contour targets)
        "mwatershed>=0.5",  # mutex watershed of affinities
        "dask[distributed]>=2024.1",  # chunked deploy on a local or remote Dask cluster
        "neuroglancer>=2.40",  # emseg view --neuroglancer
        # cellmap-data (s3fs/aiobotocore) and cloud-volume (boto3) both pin botocore; constraints.txt
        # fixes one compatible pair so the resolver never backtracks.
        "boto3>=1.34",
        "botocore>=1.34",
    ],
    extras_require={"test": ["pytest>=7", "pytest-timeout>=2"]},
    entry_points=ENTRY_POINTS,
)
