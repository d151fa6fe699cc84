"""Where weights come from: known names, local Hugging Face directories, the cache (see ``catalog``)."""

from r1pipeline.models.catalog import ModelNotFound, check_model_ref, list_models, resolve_model

__all__ = ["ModelNotFound", "check_model_ref", "list_models", "resolve_model"]
