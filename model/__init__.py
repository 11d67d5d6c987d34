"""VQ4ALL in PyTorch: the universal codebook, candidate assignments with progressive network
construction and distillation, the baselines, and the export of network programs; the front
ends that read a user's model files. :mod:`~vq4all.model.workloads` holds the networks and
data that the project measures on."""
