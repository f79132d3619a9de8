"""Synthesised spoken digits: each synthesiser's voices split by voice, seeded settings, and a clear error when
the program is missing."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from omniembed.datasets.omnidigits_sources import MissingToolError
from omniembed.datasets.omnidigits_speech import (SPEECH_RATE, SPEECH_SOURCES, SPEECH_TOOLS, VoiceSource,
                                                  synthesised_recordings)


def test_flite_digits_are_split_by_voice_and_tagged_with_the_synthesiser():
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed (apt-get install flite)")
    spec = SPEECH_SOURCES["flite"]
    pool = synthesised_recordings(seed=0, workers=2, source="flite")
    assert pool.sample_rate == SPEECH_RATE and pool.synthetic and not pool.skipped
    voices = {split: {pool.ids[i].split(":")[1].split("/")[0] for i in index} for split, index in pool.splits.items()}
    assert voices == {split: set(spec.voices[split]) for split in ("train", "test")}
    assert all(i.startswith("flite:") for i in pool.ids)
    np.testing.assert_array_equal(np.bincount(pool.labels), [len(pool.waves) // 10] * 10)
    # trimmed words: 0.2-1.5 s each, loud at both ends, not the same take twice
    seconds = np.array([len(w) for w in pool.waves]) / SPEECH_RATE
    assert 0.2 < seconds.min() and seconds.max() < 1.5
    assert not np.array_equal(pool.waves[0], pool.waves[1])


def test_takes_draw_seeded_settings_in_the_tools_units():
    espeak, flite = SPEECH_SOURCES["espeak-ng"], SPEECH_SOURCES["flite"]
    takes = espeak.draw_takes(seed=3)
    assert takes == espeak.draw_takes(seed=3) and takes != espeak.draw_takes(seed=4)
    assert all(float(t.speed).is_integer() and espeak.speed[0] <= t.speed < espeak.speed[1] for t in takes)
    reals = flite.draw_takes(seed=3)
    assert len(reals) == 10 * flite.takes * sum(len(v) for v in flite.voices.values())
    assert all(flite.pitch[0] <= t.pitch < flite.pitch[1] for t in reals)
    assert len({t.speed for t in reals}) == len(reals)


def test_a_missing_synthesiser_names_the_package_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    for name in SPEECH_TOOLS:
        with pytest.raises(MissingToolError, match=f"apt-get install {SPEECH_TOOLS[name].package}"):
            SPEECH_TOOLS[name].path()


@pytest.mark.parametrize("tool, good", [("espeak-ng", "en-us"), ("flite", "kal")])
def test_an_unknown_voice_is_skipped_and_named_never_said_by_another(tool, good, monkeypatch):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    broken = VoiceSource("broken", {"train": (good,), "test": ("nosuchvoice",)}, tool=tool,
                         speed=SPEECH_SOURCES[tool].speed, pitch=SPEECH_SOURCES[tool].pitch, takes=1)
    monkeypatch.setitem(SPEECH_SOURCES, "broken", broken)
    pool = synthesised_recordings(seed=0, source="broken")
    assert len(pool.waves) == 10 and len(pool.splits["test"]) == 0
    assert len(pool.skipped) == 10 and all("nosuchvoice" in s.source for s in pool.skipped)
