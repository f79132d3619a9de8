"""Dataset builders: each writes a labelled multi-modal folder (one file per modality per sample) plus
webdataset shards for pretraining. ``omniembed data NAME OUT`` runs them from the command line."""

from .omnidigits import (CAPTION_TEMPLATES, CLASS_NAMES, MODALITIES, PROMPT_TEMPLATES, DigitRecord, Manifest,
                         build_omnidigits, load_manifest, load_split)

__all__ = ["build_omnidigits", "load_split", "load_manifest", "Manifest", "DigitRecord", "CLASS_NAMES",
           "PROMPT_TEMPLATES", "CAPTION_TEMPLATES", "MODALITIES"]
