"""The tests' name for `benchmarks.cifar_binary` (generated CIFAR-100 binaries), which the GPU figures share."""

from benchmarks.cifar_binary import offline_download, write_cifar100_binary  # noqa: F401
