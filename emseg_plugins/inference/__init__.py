"""Prediction: a checkpoint as a plain nn.Module (predictor), sliding windows, TTA, chunked deploy, SLURM scripts, writers."""
