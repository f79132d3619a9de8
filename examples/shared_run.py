"""The OmniDigits run the example notebooks share: built and trained by the first notebook that needs it.

Everything lives under ``$OMNIEMBED_EXAMPLES_CACHE`` (default: ``examples/.cache``). ``omniembed.demo.run_demo``
resumes every stage, so the first call builds OmniDigits and trains the model (about 2 minutes on an idle 2-core
CPU) and later calls, from any notebook, reuse them. OmniDigits is made from MNIST and FSDD when
``$OMNIEMBED_SHARED_DATA`` names a folder holding them (e.g. the repository's ``../shared/data``), else from the
offline sources.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from omniembed.demo import DemoConfig, DemoResult, build_data, run_demo

CACHE = Path(os.environ.get("OMNIEMBED_EXAMPLES_CACHE", Path(__file__).resolve().parent / ".cache"))
RUN = DemoConfig(out=CACHE / "omnidigits", source="auto", n_train=1000, n_test=100, anchor_steps=200, steps=160,
                 batch_size=32)
"""Five times the data of ``DemoConfig.quick``, whose 200 training samples a model memorises rather than learns
from. MNIST + FSDD (else the offline sources) rather than the demo's every source: the notebooks show one
source's digits, and skip synthesising the other espeak-ng sources. The full ``make demo`` trains longer and is
better (about 6.5 minutes on 2 idle cores)."""
DATA = RUN.out / "data"
"""Where ``run_demo`` writes the OmniDigits build: ``train/`` and ``test/`` folders of files, and shards."""


def omnidigits() -> Path:
    """The OmniDigits build of the shared run (1,000 training and 100 test samples), made on first use."""
    with contextlib.redirect_stdout(io.StringIO()):
        return build_data(RUN, DATA, log=lambda line: None)


def trained_run() -> DemoResult:
    """The shared run — model, evaluation report, test-split index — trained on first use. The demo's own log is
    kept quiet: the notebooks show what matters to them."""
    with contextlib.redirect_stdout(io.StringIO()):
        return run_demo(RUN, log=lambda line: None)
