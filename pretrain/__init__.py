"""Contrastive pretraining: losses, data pipelines, distributed trainer, recipes."""
