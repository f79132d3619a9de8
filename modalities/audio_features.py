"""Audio numerics: clip placement, sinc resampling, and the Kaldi log-mel filterbank — per clip and batched.

Two implementations of the same recipe live here:

* the **reference** path is ImageBind's, call for call: ``torchaudio.functional.resample`` and
  ``torchaudio.compliance.kaldi.fbank`` on one clip at a time;
* the **batched** path computes the same numbers with fewer, larger tensor ops: :class:`PolyphaseResampler`
  applies torchaudio's own sinc kernel as a few banded matrix products (the dense kernel is mostly zeros), and
  :class:`BatchedFbank` runs Kaldi's framing → DC removal → pre-emphasis → Hann window → |rfft|² → mel → log on
  a whole batch of clips, on any device. Both agree with the reference to float32 rounding (tests pin the bound).

Shapes: waveforms ``[C, N]`` or ``[N]`` float32 at the stated rate; log-mel ``[B, frames, n_mels]``; model input
``[B, 1, n_mels, target_frames]``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn
from torchaudio.compliance import kaldi

FRAME_MS = 25.0
SHIFT_MS = 10.0
PREEMPHASIS = 0.97
LOW_FREQ = 20.0
MAX_POLYPHASES = 1024
"""Rate pairs whose reduced output rate exceeds this (e.g. 16001 → 16000 Hz) use torchaudio's resampler."""
LOG_FLOOR = torch.finfo(torch.float32).eps
"""Kaldi floors mel energies at float32 epsilon before the log: silence gives log(ε) ≈ −15.94 in every bin."""


# ---- where the clips go ------------------------------------------------------------------------------------------
def clip_ranges(n_samples: int, sample_rate: int, n_clips: int, clip_seconds: float) -> list[tuple[int, int]]:
    """Sample ranges ``[start, stop)`` of ``n_clips`` clips of ``clip_seconds`` spread over ``n_samples``.

    Clip k starts at k·(duration − clip)/(K − 1) seconds (the first at 0, the last ending at the end), with the
    exact rational arithmetic of pytorchvideo's ``ConstantClipsPerVideoSampler`` at the commit ImageBind pins
    (seconds as the exact value of the float ``duration − clip``, samples floored), so sample indices match
    ImageBind's. A file shorter than one clip gives K copies of ``[0, n_samples)``.
    """
    p, q = max(n_samples / sample_rate - clip_seconds, 0.0).as_integer_ratio()  # max start = p / q seconds
    c, d = float(clip_seconds).as_integer_ratio()
    steps = max(n_clips - 1, 1)
    ranges = []
    for k in range(n_clips):
        start = k * p * sample_rate // (q * steps)  # floor((k · p / (q · steps)) · rate), in integers
        stop = (k * p * d + c * q * steps) * sample_rate // (q * steps * d)
        ranges.append((start, min(stop, n_samples)))
    return ranges


def voiced_span(mono: torch.Tensor, sample_rate: int, trim_db: float) -> tuple[int, int]:
    """Samples ``[start, stop)`` of ``mono [N]`` from the first to the last 25 ms frame (every 10 ms) whose energy
    is within ``trim_db`` dB of the loudest frame's: the sound without the quieter lead-in and tail around it.
    Silence throughout (or a signal shorter than one frame) keeps everything."""
    window, shift = frame_samples(sample_rate)
    if mono.shape[0] < window:
        return 0, mono.shape[0]
    energy = mono.unfold(0, window, shift).square().mean(dim=1)                 # [frames]
    peak = energy.max()
    if not peak > 0:
        return 0, mono.shape[0]
    loud = (energy >= peak * 10 ** (-trim_db / 10)).nonzero()[:, 0]
    last = len(energy) - 1  # loud to the last whole frame: the samples after it stay too
    return int(loud[0]) * shift, mono.shape[0] if loud[-1] == last else int(loud[-1]) * shift + window


def frame_samples(sample_rate: int) -> tuple[int, int]:
    """Kaldi's (window, shift) in samples for 25 ms frames every 10 ms."""
    return int(sample_rate * FRAME_MS / 1000), int(sample_rate * SHIFT_MS / 1000)


def n_frames(n_samples: int | torch.Tensor, sample_rate: int) -> int | torch.Tensor:
    """Frames Kaldi makes from ``n_samples`` (``snip_edges``: only whole frames; 0 below one frame)."""
    window, shift = frame_samples(sample_rate)
    if isinstance(n_samples, torch.Tensor):
        return torch.where(n_samples >= window, 1 + torch.div(n_samples - window, shift, rounding_mode="floor"), 0)
    return 1 + (n_samples - window) // shift if n_samples >= window else 0


# ---- resampling --------------------------------------------------------------------------------------------------
def resampled_length(n_samples: int, orig_rate: int, new_rate: int) -> int:
    """Length of ``torchaudio.functional.resample``'s output for ``n_samples`` input samples."""
    g = math.gcd(orig_rate, new_rate)
    return math.ceil(new_rate // g * n_samples / (orig_rate // g))


def sinc_kernel(orig_rate: int, new_rate: int, lowpass_filter_width: int = 6,
                rolloff: float = 0.99) -> tuple[torch.Tensor, int]:
    """torchaudio's ``sinc_interp_hann`` resampling kernel ``[new, 2·width + orig]`` (rates reduced by their gcd)
    and ``width``, computed with the same operations in the same dtypes, so the values are identical."""
    g = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // g, new_rate // g
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None] / orig
    t = torch.arange(0, -new, -1)[:, None] / new + idx  # int64 / int is float32 there too
    t *= base
    t = t.clamp_(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t *= math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernel *= window * (base / orig)
    return kernel.to(torch.float32), width


class PolyphaseResampler:
    """torchaudio's sinc resampler as one batched matrix product. ``[..., L]`` → ``[..., ceil(L·new/orig)]``.

    torchaudio convolves with a ``[new, 2·width + orig]`` kernel at stride ``orig``, but each of its ``new``
    output phases is non-zero on only about ``2·width`` taps. Here the phases are cut into groups of
    ``phases_per_group``; group g reads a band of ``taps`` inputs starting ``g · spacing`` after the block start,
    so one strided view ``[groups, blocks, taps]`` of the signal (no copy) times ``[groups, taps, phases]`` gives
    every output (for 44.1 → 16 kHz: 6× fewer multiply-adds than the dense kernel, as a GEMM). Outputs equal
    torchaudio's to float32 rounding (tests pin 1e-4 on unit-variance noise; 1e-5 on audio-level signals).
    """

    def __init__(self, orig_rate: int, new_rate: int, lowpass_filter_width: int = 6, rolloff: float = 0.99,
                 phases_per_group: int = 16):
        g = math.gcd(orig_rate, new_rate)
        self.orig, self.new = orig_rate // g, new_rate // g
        kernel, self.width = sinc_kernel(orig_rate, new_rate, lowpass_filter_width, rolloff)
        nonzero = kernel != 0
        first = nonzero.float().argmax(dim=1)
        last = kernel.shape[1] - nonzero.flip(1).float().argmax(dim=1)
        per = min(phases_per_group, self.new)
        groups = [(p0, min(p0 + per, self.new)) for p0 in range(0, self.new, per)]
        starts = [int(first[a:b].min()) for a, b in groups]
        self.spacing = min((starts[i] // i for i in range(1, len(groups))), default=0)  # i·spacing ≤ its band start
        self.taps = max(int(last[a:b].max()) - i * self.spacing for i, (a, b) in enumerate(groups))
        bands = torch.zeros(len(groups), self.taps, per)
        for i, (a, b) in enumerate(groups):
            c0 = i * self.spacing
            block = kernel[a:b, c0: c0 + self.taps]
            bands[i, : block.shape[1], : b - a] = block.T
        self.bands = bands

    def padding(self, length: int) -> tuple[int, int]:
        """Zeros the input needs (left, right) around ``length`` samples, for :meth:`resample_padded`."""
        blocks = math.ceil(math.ceil(self.new * length / self.orig) / self.new)
        groups, taps, _ = self.bands.shape
        needed = (groups - 1) * self.spacing + (blocks - 1) * self.orig + taps
        return self.width, max(needed - length - self.width, 0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape, length = x.shape[:-1], x.shape[-1]
        out = self.resample_padded(F.pad(x.reshape(-1, length), self.padding(length)), length)
        return out.reshape(*shape, -1)

    def resample_padded(self, padded: torch.Tensor, length: int) -> torch.Tensor:
        """``[R, left + length + right]`` already zero-padded by :meth:`padding` → ``[R, ceil(length·new/orig)]``
        (saves a copy when the caller reads the signal straight into a padded buffer)."""
        target = math.ceil(self.new * length / self.orig)
        blocks = math.ceil(target / self.new)
        groups, taps, per = self.bands.shape
        bands = self.bands.to(device=padded.device, dtype=padded.dtype)
        rows = []
        for row in padded:  # channels: one strided view each
            view = row.as_strided((groups, blocks, taps), (self.spacing, self.orig, 1))
            rows.append(torch.bmm(view, bands).transpose(0, 1).reshape(blocks, groups * per)[:, : self.new])
        out = rows[0][None] if len(rows) == 1 else torch.stack(rows)
        return out.reshape(len(rows), -1)[:, :target]


_RESAMPLERS: dict[tuple[int, int], PolyphaseResampler] = {}


def polyphase_resampler(orig_rate: int, new_rate: int) -> PolyphaseResampler | None:
    """The cached :class:`PolyphaseResampler` for a rate pair; None where torchaudio's is used instead
    (equal rates, or a reduced output rate above ``MAX_POLYPHASES``)."""
    if orig_rate == new_rate or new_rate // math.gcd(orig_rate, new_rate) > MAX_POLYPHASES:
        return None
    key = (orig_rate, new_rate)
    if key not in _RESAMPLERS:
        _RESAMPLERS[key] = PolyphaseResampler(orig_rate, new_rate)
    return _RESAMPLERS[key]


def resample(x: torch.Tensor, orig_rate: int, new_rate: int, method: str = "polyphase") -> torch.Tensor:
    """``[..., L]`` float32 at ``orig_rate`` → ``new_rate``. ``method``: "torchaudio" (the reference) or
    "polyphase" (:class:`PolyphaseResampler`, the same kernel, faster)."""
    if orig_rate == new_rate:
        return x
    resampler = polyphase_resampler(orig_rate, new_rate) if method == "polyphase" else None
    return resampler(x) if resampler is not None else torchaudio.functional.resample(x, orig_rate, new_rate)


def resampler_blocks(orig_rate: int, new_rate: int, lowpass_filter_width: int = 6,
                     rolloff: float = 0.99) -> tuple[int, int, int]:
    """``(orig, new, margin)``: the rates reduced by their gcd — the resampler maps each block of ``orig`` input
    samples to ``new`` output samples — and how many whole blocks a window must reach back (the kernel's
    half-width, rounded up) for its resampled samples to equal the whole file's."""
    g = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // g, new_rate // g
    width = math.ceil(lowpass_filter_width * orig / (min(orig, new) * rolloff))
    return orig, new, math.ceil(width / orig) + 1


# ---- filterbanks -------------------------------------------------------------------------------------------------
def kaldi_fbank(wave: torch.Tensor, sample_rate: int, n_mels: int) -> torch.Tensor:
    """ImageBind's call: one clip ``[N]`` → log-mel ``[frames, n_mels]`` (``torchaudio.compliance.kaldi.fbank``)."""
    return kaldi.fbank(wave[None], htk_compat=True, sample_frequency=sample_rate, use_energy=False,
                       window_type="hanning", num_mel_bins=n_mels, dither=0.0, frame_length=FRAME_MS,
                       frame_shift=SHIFT_MS)


class BatchedFbank(nn.Module):
    """Kaldi's fbank (ImageBind's settings) on a batch of clips at once, on the module's device, straight to
    the model input.

    M clips of any lengths → ``[M, 1, n_mels, target_frames]``: log-mel, transposed, zero-padded (in log-mel
    units) or cut to ``target_frames``, ``(x − mean) / std`` — the layout :func:`log_mel_to_model_input` gives
    :func:`kaldi_fbank`'s output. Clips are processed ``chunk`` at a time so every intermediate stays
    cache-sized (measured fastest at 8 on 2 CPU cores).
    """

    def __init__(self, sample_rate: int, n_mels: int = 128, chunk: int = 8):
        super().__init__()
        self.sample_rate = sample_rate
        self.window_size, self.shift = frame_samples(sample_rate)
        self.n_fft = 1 << (self.window_size - 1).bit_length()
        self.n_mels, self.chunk = n_mels, chunk
        mel, _ = kaldi.get_mel_banks(n_mels, self.n_fft, float(sample_rate), LOW_FREQ, 0.0, 100.0, -500.0, 1.0)
        self.mel = BandedMatmul(mel.T, groups=5)  # [n_fft / 2, n_mels]: the Nyquist bin has no mel weight
        self.register_buffer("window", torch.hann_window(self.window_size, periodic=False), persistent=False)

    def forward(self, clips: Sequence[torch.Tensor], target_frames: int, mean: float, std: float) -> torch.Tensor:
        """``clips``: M waveforms ``[n_i]`` (any lengths ≥ one frame) → ``[M, 1, n_mels, target_frames]``."""
        device = clips[0].device
        out = torch.empty(len(clips), 1, self.n_mels, target_frames, device=device)
        frames = [min(int(n_frames(c.shape[0], self.sample_rate)), target_frames) for c in clips]
        chunk, most = min(self.chunk, len(clips)), max(frames)
        waves = torch.zeros(chunk, self.window_size + (most - 1) * self.shift, device=device)
        buf = torch.zeros(chunk, most, self.n_fft, device=device)  # the zero tail (FFT padding) is never written
        for i in range(0, len(clips), chunk):
            self._chunk(clips[i: i + chunk], frames[i: i + chunk], out[i: i + chunk], waves, buf, mean, std)
        return out

    def _chunk(self, rows: Sequence[torch.Tensor], frames: list[int], out: torch.Tensor, waves: torch.Tensor,
               buf: torch.Tensor, mean: float, std: float) -> None:
        """Fill ``out [b, 1, n_mels, target]`` for ``rows`` (b ≤ chunk clips), using the scratch tensors."""
        b, t = len(rows), max(frames)
        n = self.window_size + (t - 1) * self.shift
        if all(row.shape[0] >= n for row in rows):
            torch.stack([row[:n] for row in rows], out=waves[:b, :n])
        else:
            for j, row in enumerate(rows):
                waves[j, : min(n, row.shape[0])] = row[:n]
                waves[j, row.shape[0]: n] = 0.0
        log_mel = self._log_mel(waves[:b, :n], buf[:b, :t])  # [b, t, n_mels]
        pad_value = (0.0 - mean) / std
        # (x − mean) / std as x · (1 / std) − mean / std, written transposed in one pass
        torch.addcmul(log_mel.new_tensor(-mean / std), log_mel.transpose(1, 2), log_mel.new_tensor(1.0 / std),
                      out=out[:, 0, :, :t])
        out[:, 0, :, t:] = pad_value
        for j in range(b):  # a shorter clip in the chunk: pad past its own frames
            if frames[j] < t:
                out[j, 0, :, frames[j]: t] = pad_value

    def _log_mel(self, waves: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
        """``[b, N]`` → log-mel ``[b, T, n_mels]`` with T = ``buf.shape[1]``, through ``buf [b, T, n_fft]``.

        Kaldi per frame: x − mean(x), pre-emphasis y_i = x_i − 0.97·x_{i−1} (y_0 = 0.03·x_0), Hann window. Both
        first steps are linear, so they are done on the signal once instead of on every (2.5× overlapping)
        frame: pre-emphasis of (x − μ) is pre-emphasis of x minus 0.03·μ, with μ each frame's mean. y_0 needs
        no care: the Hann window's first weight is 0.
        """
        w, shift, frames = self.window_size, self.shift, buf.shape[1]
        emphasised = torch.empty_like(waves)
        emphasised[:, 0] = 0.0
        torch.sub(waves[:, 1:], waves[:, :-1], alpha=PREEMPHASIS, out=emphasised[:, 1:])
        frame_mean = waves.unfold(-1, w, shift)[:, :frames].mean(dim=-1)  # [b, T]
        body = buf[..., :w]
        torch.mul(emphasised.unfold(-1, w, shift)[:, :frames], self.window, out=body)
        body.addcmul_(frame_mean.unsqueeze(-1), self.window, value=-(1.0 - PREEMPHASIS))
        spectrum = torch.view_as_real(torch.fft.rfft(buf)).square_()  # [b, T, n_fft / 2 + 1, (re², im²)]
        energies = self.mel(spectrum[..., 0] + spectrum[..., 1])
        return energies.clamp_min_(LOG_FLOOR).log_()


class BandedMatmul(nn.Module):
    """``x @ matrix`` for a matrix whose columns are each non-zero on one run of rows (mel filters: triangles).

    Columns are cut into at most ``groups`` consecutive runs, chosen (by dynamic programming) to minimise the
    multiply-adds when each run is multiplied by only the rows where it is non-zero: for Kaldi's 128 mel filters
    over 256 FFT bins, 5 runs do 5× fewer than the dense product (more runs save more but cost more calls).
    """

    def __init__(self, matrix: torch.Tensor, groups: int):
        super().__init__()
        nonzero = matrix != 0
        rows = torch.arange(matrix.shape[0])[:, None].expand_as(matrix)
        first = torch.where(nonzero, rows, matrix.shape[0]).amin(dim=0).tolist()  # per column
        last = (torch.where(nonzero, rows, -1).amax(dim=0) + 1).tolist()
        self.spans: list[tuple[int, int, int, int]] = []  # (first row, last row + 1, first col, last col + 1)
        for i, (c0, c1) in enumerate(_partition(first, last, groups)):
            r0 = min(first[c0:c1])
            r1 = max(max(last[c0:c1]), r0 + 1)
            self.spans.append((r0, r1, c0, c1))
            self.register_buffer(f"band{i}", matrix[r0:r1, c0:c1].contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., rows or more]`` → ``[..., columns]`` (rows past the matrix's are ignored)."""
        return torch.cat([x[..., r0:r1] @ getattr(self, f"band{i}") for i, (r0, r1, _, _) in enumerate(self.spans)],
                         dim=-1)


def _partition(first: list[int], last: list[int], groups: int) -> list[tuple[int, int]]:
    """Cut columns ``0..n`` into ≤ ``groups`` runs minimising Σ (columns × rows spanned) of each run."""
    n = len(first)
    cost = [[0] * (n + 1) for _ in range(n + 1)]
    for a in range(n):
        lo, hi = first[a], last[a]
        for b in range(a + 1, n + 1):
            lo, hi = min(lo, first[b - 1]), max(hi, last[b - 1])
            cost[a][b] = (b - a) * max(hi - lo, 1)
    best = [[float("inf")] * (n + 1) for _ in range(groups + 1)]
    cut = [[0] * (n + 1) for _ in range(groups + 1)]
    best[0][0] = 0
    for g in range(1, groups + 1):
        for b in range(1, n + 1):
            for a in range(g - 1, b):
                value = best[g - 1][a] + cost[a][b]
                if value < best[g][b]:
                    best[g][b], cut[g][b] = value, a
    g = min(range(1, groups + 1), key=lambda k: best[k][n])
    runs, b = [], n
    while g > 0:
        a = cut[g][b]
        runs.append((a, b))
        b, g = a, g - 1
    return runs[::-1]


def normalise_per_clip(features: torch.Tensor, frames: Sequence[int], eps: float = 1e-5) -> torch.Tensor:
    """Cepstral mean and variance normalisation per clip: each mel bin of ``features [M, 1, n_mels, T]`` to zero
    mean and unit variance over the clip's first ``frames[i]`` (valid) frames; padding frames become 0.

    It removes what is constant over an utterance (microphone, level, much of a speaker's timbre), which is what
    a model trained on few speakers must ignore to generalise to new ones.
    """
    valid = (torch.arange(features.shape[-1], device=features.device)[None]
             < torch.as_tensor(list(frames), device=features.device)[:, None])[:, None, None, :]  # [M, 1, 1, T]
    count = valid.sum(-1, keepdim=True).clamp_min(1)
    mean = (features * valid).sum(-1, keepdim=True) / count
    var = (((features - mean) * valid) ** 2).sum(-1, keepdim=True) / count
    return ((features - mean) / (var + eps).sqrt()).masked_fill(~valid, 0.0)


def log_mel_to_model_input(log_mel: torch.Tensor, frames: torch.Tensor, target_frames: int, mean: float,
                           std: float) -> torch.Tensor:
    """Log-mel ``[B, T, n_mels]`` with ``frames [B]`` valid rows → ``[B, 1, n_mels, target_frames]``.

    As ImageBind: transposed, zero-padded (in log-mel units, before normalising) or cut to ``target_frames``,
    then ``(x − mean) / std``.
    """
    b, t, m = log_mel.shape
    out = log_mel.new_zeros(b, m, target_frames)
    t = min(t, target_frames)
    out[..., :t] = log_mel[:, :t].transpose(1, 2)
    valid = torch.arange(target_frames, device=out.device)[None] < frames.to(out.device)[:, None]
    out = out.masked_fill_(~valid[:, None, :], 0.0)
    return ((out - mean) / std).unsqueeze(1)
