"""Sparse ImageNet transfer (Iofinova et al., CVPR 2022): importing the upstream checkpoints."""
