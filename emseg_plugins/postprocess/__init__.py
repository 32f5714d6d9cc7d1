"""Post-processing: predictions (probabilities, embeddings) to instance label maps."""
