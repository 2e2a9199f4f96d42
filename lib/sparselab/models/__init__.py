"""Model registry: torchvision ResNets, CIFAR ResNets, VGG, MobileNet-V1, WRN, LeNet-300-100."""

from .registry import ModelSpecError, arch_kwargs, build_model, list_archs, register_arch

__all__ = ["ModelSpecError", "arch_kwargs", "build_model", "list_archs", "register_arch"]
