"""Training engine on PyTorch Lightning: module, data module, trainer factory, run orchestration."""
