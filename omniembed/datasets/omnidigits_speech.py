"""Synthesised spoken digits: each digit word said by the voices of a speech synthesiser, split by voice.

A *voice source* (:class:`VoiceSource`) is one synthesiser's set of voices, with the ranges each take's speed and
pitch are drawn from; test voices are never heard in train (a voice is the synthetic counterpart of a speaker).
Two synthesisers (:data:`SPEECH_TOOLS`), apart in how they make speech:

* **espeak-ng** — formant synthesis. Four sources, each with voices of its own: ``espeak-ng`` (the default voices
  at 120-200 words/minute), ``espeak-ng-fast-high`` (230-330 wpm, high pitch), ``espeak-ng-slow-low`` (80-115
  wpm, low pitch) and ``espeak-ng-whisper`` (whispered and croaking variants);
* **flite** — CMU's statistical-parametric and diphone voices, each built from one real speaker's recordings
  (CMU ARCTIC's awb, Scottish male; slt, US female; rms, US male; kal, US male diphones): closer to a recorded
  voice's spectrum than formants are. Source ``flite``, speed as a duration stretch (0.75-1.4) and pitch as a
  target mean F0 (85-190 Hz; rms keeps its own).

Every recording is trimmed of leading and trailing silence and resampled to :data:`SPEECH_RATE`; the renderer adds
noise to every use of a synthetic recording. A synthesiser that is not installed raises
:class:`~.omnidigits_sources.MissingToolError` naming the Debian package.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..extras import require
from .omnidigits_sources import DIGIT_WORDS, SPLITS, AudioPool, MissingToolError, Skipped

SPEECH_RATE = 8000
"""Synthesised speech is resampled to this rate (Hz): FSDD's, and the demo model's audio rate."""


@dataclass(frozen=True)
class Take:
    """One synthesis call: digit ``label`` said by ``voice`` at ``speed`` and ``pitch`` (in the tool's units)."""

    voice: str
    label: int
    take: int
    speed: float
    pitch: float


@dataclass(frozen=True)
class SpeechTool:
    """A speech synthesiser program: its ``argv(executable, take, wav_path)``, the ``tag`` its recordings' ids
    start with, and whether speed and pitch are drawn as integers (espeak-ng's words/minute and 0-99 pitch) or
    reals."""

    executable: str
    tag: str
    package: str
    argv: Callable[[str, Take, Path], list[str]]
    integer_settings: bool
    list_voices: Callable[[str], set[str]] | None = None
    """The voices the installed program has, for a tool that says an unknown voice with its default one instead
    of failing (flite); None where an unknown voice is an error of the program's own (espeak-ng)."""

    def path(self) -> str:
        """The program's path; :class:`MissingToolError` telling how to install it."""
        found = shutil.which(self.executable)
        if found is None:
            raise MissingToolError(f"{self.executable} is not on PATH; offline spoken digits are synthesised with it: "
                                   f"install it with `apt-get install {self.package}`, or build from shared data "
                                   f"(source='shared')")
        return found


def _espeak_argv(exe: str, take: Take, wav: Path) -> list[str]:
    return [exe, "-v", take.voice, "-s", str(int(take.speed)), "-p", str(int(take.pitch)), "-w", str(wav),
            DIGIT_WORDS[take.label]]


def _flite_argv(exe: str, take: Take, wav: Path) -> list[str]:
    return [exe, "-voice", take.voice, "--setf", f"duration_stretch={take.speed:.3f}",
            "--setf", f"int_f0_target_mean={take.pitch:.1f}", "-t", DIGIT_WORDS[take.label], "-o", str(wav)]


def _flite_voices(exe: str) -> set[str]:
    listed = subprocess.run([exe, "-lv"], capture_output=True, text=True, timeout=60).stdout
    return set(listed.split(":", 1)[-1].split())  # "Voices available: kal awb ..."


SPEECH_TOOLS: dict[str, SpeechTool] = {
    "espeak-ng": SpeechTool("espeak-ng", "espeak", "espeak-ng", _espeak_argv, integer_settings=True),
    "flite": SpeechTool("flite", "flite", "flite", _flite_argv, integer_settings=False, list_voices=_flite_voices),
}
"""Speech synthesisers by name."""


@dataclass(frozen=True)
class VoiceSource:
    """One synthesised source: the ``tool`` (:data:`SPEECH_TOOLS`), its voices per split, and the ranges each
    take's speed and pitch are drawn from (the tool's units)."""

    name: str
    voices: dict[str, tuple[str, ...]]
    tool: str = "espeak-ng"
    speed: tuple[float, float] = (120, 200)
    pitch: tuple[float, float] = (25, 75)
    takes: int = 4
    """Recordings per (voice, digit), each at its own seeded speed and pitch."""
    stream: tuple[int, ...] = ()
    """Extra seed words, so that sources draw different speeds and pitches from the same build seed."""

    def draw_takes(self, seed: int) -> list[Take]:
        """Every (voice, digit, take) of both splits with its seeded speed and pitch."""
        rng = np.random.default_rng([seed, 0xE5, *self.stream])
        draw = rng.integers if SPEECH_TOOLS[self.tool].integer_settings else rng.uniform
        return [Take(voice, label, t, float(draw(*self.speed)), float(draw(*self.pitch)))
                for split in SPLITS for voice in self.voices[split] for label in range(10) for t in range(self.takes)]


SPEECH_SOURCES: dict[str, VoiceSource] = {s.name: s for s in (
    VoiceSource("espeak-ng", {"train": ("en-us", "en-us+f2", "en-gb+m3", "en-gb-scotland+f4", "en-029+m2",
                                        "en-us+klatt"),
                              "test": ("en-gb-x-rp+f3", "en-us-nyc+m5")}),
    VoiceSource("espeak-ng-fast-high", {"train": ("en-us+f5", "en-gb+Annie", "en+f1", "en-029+m4"),
                                        "test": ("en-gb-x-rp+shelby", "en-us+m6")},
                speed=(230, 330), pitch=(70, 99), takes=3, stream=(1,)),
    VoiceSource("espeak-ng-slow-low", {"train": ("en+m7", "en-us+grandpa", "en-gb+m1", "en-029+travis"),
                                       "test": ("en-us+norbert", "en-gb-scotland+victor")},
                speed=(80, 115), pitch=(0, 25), takes=3, stream=(2,)),
    VoiceSource("espeak-ng-whisper", {"train": ("en-us+whisper", "en-gb+croak", "en+klatt4"),
                                      "test": ("en+whisperf", "en-us-nyc+grandma")},
                takes=3, stream=(3,)),
    VoiceSource("flite", {"train": ("awb", "slt", "kal16"), "test": ("rms",)}, tool="flite",
                speed=(0.75, 1.4), pitch=(85.0, 190.0), takes=8, stream=(4,)),
)}
"""Synthesised sources by name: espeak-ng's default voices and its variants apart in speed, pitch and voice
quality; flite's voices from real speakers."""
ESPEAK_VOICES = SPEECH_SOURCES["espeak-ng"].voices
"""The default source's voices per split (the ``offline`` build's speech)."""


def synthesised_recordings(seed: int, workers: int = 1, source: str = "espeak-ng") -> AudioPool:
    """Every digit said by every voice of the :data:`SPEECH_SOURCES` entry ``source`` its ``takes`` times, split
    by voice."""
    spec = SPEECH_SOURCES[source]
    tool = SPEECH_TOOLS[spec.tool]
    exe = tool.path()
    takes = spec.draw_takes(seed)
    installed = tool.list_voices(exe) if tool.list_voices else None
    with tempfile.TemporaryDirectory(prefix="omnidigits-speech-") as scratch, \
            ThreadPoolExecutor(max(1, workers)) as pool:  # the work is in the subprocesses
        results = list(pool.map(lambda i: _synthesise(tool, exe, takes[i], Path(scratch) / f"{i}.wav", installed),
                                range(len(takes))))
    waves, labels, ids, voices, skipped = [], [], [], [], []
    for take, result in zip(takes, results):
        if isinstance(result, Skipped):
            skipped.append(result)
            continue
        waves.append(result)
        labels.append(take.label)
        ids.append(f"{tool.tag}:{take.voice}/{take.label}/{take.take}")
        voices.append(take.voice)
    if not waves:
        raise MissingToolError(f"{spec.tool} synthesised no audio ({skipped[0].reason})")
    held_out = np.isin(voices, spec.voices["test"])
    index = np.arange(len(waves))
    rule = (f"{source} by voice: test = {', '.join(spec.voices['test'])}; train = {', '.join(spec.voices['train'])}"
            f"; speed {spec.speed[0]}-{spec.speed[1]}, pitch {spec.pitch[0]}-{spec.pitch[1]}")
    return AudioPool(source, rule, SPEECH_RATE, waves, np.asarray(labels, np.int64), ids,
                     {"train": index[~held_out], "test": index[held_out]}, synthetic=True, skipped=skipped)


def _synthesise(tool: SpeechTool, exe: str, take: Take, wav: Path, installed: set[str] | None) -> np.ndarray | Skipped:
    """One synthesis call → float32 [T] at SPEECH_RATE, trimmed of leading/trailing silence; or why it failed
    (``installed``: the voices the program has, where it does not fail on an unknown one itself)."""
    import soundfile as sf

    resample_poly = require("scipy.signal", "the offline OmniDigits speech (resampling)").resample_poly

    said = f"{tool.executable} voice {take.voice} '{DIGIT_WORDS[take.label]}' speed {take.speed:g} pitch {take.pitch:g}"
    if installed is not None and take.voice not in installed:
        return Skipped(said, f"{tool.executable} has no voice {take.voice} (it has {', '.join(sorted(installed))})")
    done = subprocess.run(tool.argv(exe, take, wav), capture_output=True, timeout=60)
    if done.returncode != 0 or not wav.is_file() or wav.stat().st_size == 0:
        return Skipped(said, f"{tool.executable} failed (exit {done.returncode}): "
                             f"{done.stderr.decode(errors='replace').strip()}")
    wave, rate = sf.read(wav, dtype="float32")
    loud = np.flatnonzero(np.abs(wave) > 1e-3)
    if len(loud) == 0:
        return Skipped(said, f"{tool.executable} produced silence")
    margin = rate // 50  # keep 20 ms around the word
    wave = wave[max(0, loud[0] - margin): loud[-1] + margin]
    g = np.gcd(rate, SPEECH_RATE)
    return resample_poly(wave, SPEECH_RATE // g, rate // g).astype(np.float32)
