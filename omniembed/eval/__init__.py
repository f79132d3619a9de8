"""Evaluation: zero-shot classification by text prompts and cross-modal retrieval, with emergent-pair flags."""

from .retrieval import recall_at_k, same_label
from .runner import EvalReport, EvalSet, evaluate, is_emergent
from .zeroshot import DEFAULT_TEMPLATES, ZeroShotResult, classify, text_classifier

__all__ = ["EvalSet", "EvalReport", "evaluate", "is_emergent", "recall_at_k", "same_label", "classify",
           "text_classifier", "ZeroShotResult", "DEFAULT_TEMPLATES"]
