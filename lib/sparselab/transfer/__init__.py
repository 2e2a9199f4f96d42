"""Sparse ImageNet transfer (Iofinova et al., CVPR 2022): upstream checkpoint import (`imports`), features and linear finetuning (`linear`), full finetuning with the upstream masks (`full`)."""
