"""VQ4ALL in PyTorch: universal codebook, candidate assignments, export of network programs."""
