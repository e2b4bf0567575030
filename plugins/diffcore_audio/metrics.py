"""Quality metrics of generated audio, computed on the CPU with no downloaded weights.

``pitch_accuracy``
    The fraction of conditionally generated *pitched* notes whose estimated fundamental
    (YIN, :mod:`diffcore_audio.pitch`) lies within 50 cents (a quarter tone) of the
    requested note; a note with no estimate (silence, noise) counts as a miss.
``mfcc_frechet``
    The Fréchet distance (Dowson & Landau 1982; the statistic of FID and of the Fréchet Audio
    Distance, Kilgour et al. 2019) between Gaussians fitted to per-clip MFCC statistics (the
    mean and standard deviation over time of 20 MFCCs, in dB, of the log-mel spectrogram
    clamped at the representation's floor: 40 numbers per clip) of generated and of held-out
    real clips. MFCCs summarise the spectral envelope (timbre) and its
    variation, so the distance compares what the sounds are like, independently of phase.
``mfcc_frechet_floor``
    The same distance between as many *real training* clips as were generated and the same
    held-out clips: what a perfect generator would score at this sample size (the estimate
    is biased upwards for small sets, so only distances at equal sizes are comparable).

The audio domain compares generated clips with real clips rendered through the same
spectrogram round trip (encode -> decode), so the distance measures the generative model
and not the Griffin-Lim vocoder; it also reports the distances to the untouched audio
(``_raw``) and the round trip's own distance (``mfcc_frechet_roundtrip``), the ceiling a
perfect spectrogram model would reach against raw audio.
"""

from __future__ import annotations

import torch
import torchaudio.functional as AF

from .pitch import cents, estimate_pitch


class MFCCFeatures:
    """Per-clip features: mean and standard deviation over time of ``n_mfcc`` MFCCs.

    The MFCCs are the orthonormal DCT-II of the clip's decibel mel spectrogram (the codec's
    own ``MelSpectrogram``) *clamped at the representation's floor*, ``db_max -
    dynamic_range_db``: what lies below it is not modelled (it is -1 in every spectrogram the
    network sees), and without the clamp the distance is dominated by whether near-silent bins
    are exactly silent or 80 dB down (docs/domains/audio.md compares the variants).
    """

    def __init__(self, codec, *, n_mfcc: int = 20):
        self.codec = codec
        self.dct = AF.create_dct(n_mfcc, codec.n_mels, "ortho").double()  # [n_mels, n_mfcc]

    def __call__(self, waves: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        c = self.codec
        floor = c.db_max - c.dynamic_range_db
        out = []
        for i in range(0, len(waves), chunk):
            db = c.db(waves[i : i + chunk]).clamp(min=floor).double()  # [B, n_mels, frames]
            m = torch.einsum("bmt,mk->bkt", db, self.dct)
            out.append(torch.cat([m.mean(-1), m.std(-1)], dim=-1))
        return torch.cat(out)


def gaussian_stats(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    feats = feats.double()
    return feats.mean(0), torch.cov(feats.T)


def frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a [N, D]``, ``b [M, D]``:
    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (``torchaudio.functional.frechet_distance``)."""
    (mu_a, s_a), (mu_b, s_b) = gaussian_stats(a), gaussian_stats(b)
    return float(AF.frechet_distance(mu_a, s_a, mu_b, s_b))


def pitch_accuracy(waves: torch.Tensor, target_hz: torch.Tensor, sample_rate: int, tolerance_cents: float = 50.0) -> dict[str, float]:
    """Fraction of ``waves`` within ``tolerance_cents`` of ``target_hz`` (one per clip), and
    the median absolute error in cents (over the clips with an estimate)."""
    f0 = estimate_pitch(waves, sample_rate)
    err = cents(f0, target_hz).abs()
    hit = (err <= tolerance_cents) & ~err.isnan()
    return {
        "pitch_accuracy": float(hit.double().mean()) if len(hit) else float("nan"),
        "pitch_median_abs_cents": float(err.nanmedian()) if (~err.isnan()).any() else float("nan"),
        "pitch_detected": float((~err.isnan()).double().mean()) if len(hit) else float("nan"),
    }


def log_spectral_distance(a: torch.Tensor, b: torch.Tensor, *, n_fft: int = 1024, hop_length: int = 256, floor_db: float = 80.0) -> float:
    """Mean over clips and frames of the RMS difference (dB, over frequency) of the STFT power
    of ``a`` and ``b``; values more than ``floor_db`` below a clip's peak are clamped, so
    silence does not dominate."""
    win = torch.hann_window(n_fft, dtype=torch.float64)

    def db(x):
        p = torch.stft(x.double(), n_fft, hop_length, window=win, return_complex=True).abs() ** 2
        return 10 * torch.log10(p + 1e-12)

    da, dbb = db(a), db(b)
    top = da.amax((-1, -2), keepdim=True)
    da, dbb = da.clamp(min=top - floor_db), dbb.clamp(min=top - floor_db)
    return float(((da - dbb) ** 2).mean(-2).sqrt().mean())
