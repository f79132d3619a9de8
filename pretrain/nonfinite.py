"""Non-finite training: a step whose gradient norm is NaN or Inf is never applied, and the run stops — at once, or
after ``train.max_nonfinite_steps`` such steps — with an error naming the step and its samples.

Without this a single bad batch (a corrupt recording, an overflow) turns every weight into NaN, AdamW's moments
keep them there, and the run goes on for hours to export a model whose every embedding is NaN. The decision uses
the global gradient norm, which every process of a data-parallel run computes the same (the gradients are
reduced first), so all processes skip or stop together; a NaN loss gives NaN gradients, so it is caught too.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch

from omniembed.errors import OmniEmbedError

SHOWN_KEYS = 16
"""Sample keys an error lists (a batch of thousands would drown the message)."""


class NonFiniteTrainingError(OmniEmbedError):
    """The loss or gradient norm of a step was not finite (more often than allowed), or weights are not finite."""


def finite(value: torch.Tensor) -> bool:
    """Whether a scalar tensor is finite (one device sync)."""
    return bool(torch.isfinite(value).all())


class NonFiniteGuard:
    """Counts steps whose update was not applied and raises :class:`NonFiniteTrainingError` past ``max_skipped``.

    ``max_skipped`` 0: the first non-finite step stops the run; N: up to N are skipped (their update dropped, the
    learning-rate schedule moving on), the N + 1-th stops it.
    """

    def __init__(self, max_skipped: int = 0):
        self.max_skipped = max_skipped
        self.skipped = 0

    def check(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor, keys: Iterable[str]) -> bool:
        """True when step ``step`` (1-based, as logged) was applied — its gradient norm was finite, the test
        :func:`~.trainer.train_step` applies — else False. Raises naming the step, the loss, the gradient norm and
        the step's sample keys (this process's) once over the limit."""
        if finite(grad_norm):
            return True
        self.skipped += 1
        keys = list(keys)
        shown = ", ".join(keys[:SHOWN_KEYS]) + (f", … ({len(keys)} in all)" if len(keys) > SHOWN_KEYS else "")
        what = f"step {step}: loss {float(loss):.4g}, gradient norm {float(grad_norm):.4g}; samples: {shown or '?'}"
        if self.skipped > self.max_skipped:
            limit = (f"{self.skipped} non-finite steps, more than train.max_nonfinite_steps={self.max_skipped}"
                     if self.max_skipped else "set train.max_nonfinite_steps to skip such steps instead")
            raise NonFiniteTrainingError(f"non-finite training at {what} — the update was not applied and the run "
                                         f"stops ({limit})")
        return False


def nonfinite_tensors(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of ``state`` that hold NaN or Inf."""
    return [name for name, t in state.items() if t.is_floating_point() and not finite(t)]


def refuse_nonfinite(bad: list[str], where: str) -> None:
    """Raise :class:`NonFiniteTrainingError` naming ``where`` and the first of ``bad`` (tensor names), if any."""
    if bad:
        raise NonFiniteTrainingError(f"{where}: {len(bad)} weight tensor(s) hold NaN or Inf (first: "
                                     f"{', '.join(bad[:3])}); a model that embeds everything as NaN is not exported")
