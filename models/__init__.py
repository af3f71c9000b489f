"""Model side: a registry of Keras classifier families, heads, weights and precision."""

from models.builder import build_model
from models.builder import set_backbone_trainable
from models.config import ModelConfig
from models.precision import apply_precision
from models.precision import resolve_jit_compile
from models.precision import resolve_precision
from models.registry import FAMILIES
from models.weights import WeightsError
