"""Model side: a registry of Keras classifier families, heads, weights and precision."""

from fastclassify.models.builder import build_model
from fastclassify.models.builder import set_backbone_trainable
from fastclassify.models.config import ModelConfig
from fastclassify.models.precision import apply_precision
from fastclassify.models.precision import resolve_jit_compile
from fastclassify.models.precision import resolve_precision
from fastclassify.models.registry import FAMILIES
from fastclassify.models.weights import WeightsError
