"""The audio plugin's round-trip ceiling: how much of a clip survives waveform -> log-mel
spectrogram -> waveform (InverseMelScale [+ non-negative refinement] + Griffin-Lim), measured
on the held-out clips of the embedded data set (or a folder with --path).

    python examples/audio_roundtrip.py                 # the default data and codec settings
    python examples/audio_roundtrip.py --path DIR      # your own audio (data.path semantics)

Prints, for each decoder variant: pitch accuracy (YIN within 50 cents of the label, pitched
classes only), the median pitch error, the log-spectral distance of the STFT and of the
mel spectrogram, and the MFCC Fréchet distance to the raw clips next to the real-vs-real
floor. These are the figures in docs/domains/audio.md.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from diffcore_audio import metrics, pitch, synth
from diffcore_audio.domain import AudioDomain, AudioOptions


def mel_lsd(codec, a: torch.Tensor, b: torch.Tensor) -> float:
    da, db = codec.db(a), codec.db(b)
    top = da.amax((-1, -2), keepdim=True)
    floor = top - codec.dynamic_range_db
    return float(((da.clamp(min=floor) - db.clamp(min=floor)) ** 2).mean(-2).sqrt().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", default=None, help="a folder of audio files instead of the embedded data")
    ap.add_argument("--num", type=int, default=256, help="held-out clips to use")
    args = ap.parse_args()

    domain = AudioDomain(AudioOptions(path=args.path, val_fraction=0.5 if args.path else 0.1))
    domain.setup()
    c = domain.codec
    n = min(args.num, len(domain.val_waves))
    val = domain.val_waves[:n]
    ids = domain.val_ids[:n] if domain.val_ids is not None else None
    feats = metrics.MFCCFeatures(c)
    f_val = feats(val)
    ref = domain._matching_real(ids.tolist() if ids is not None else [-1] * n)
    floor = metrics.frechet(feats(ref), f_val)
    hz = None
    if ids is not None and domain.labels:
        hz = torch.tensor([synth.note_to_hz(domain.labels[i]) or math.nan for i in ids], dtype=torch.float64)
    pitched = ~hz.isnan() if hz is not None else None

    print(f"{n} held-out clips, {c.sample_rate} Hz, {c.num_samples / c.sample_rate:g} s, {c.n_mels} mels, "
          f"n_fft {c.n_fft}, hop {c.hop_length}; MFCC Fréchet real-vs-real floor {floor:.2f}")
    rows = [("raw audio (no round trip)", val, 0.0)]
    x = c.encode(val)
    for label, inv_iters, gl_iters in [
        ("InverseMelScale + Griffin-Lim 64", 0, 64),
        ("+ NN refinement 100 + Griffin-Lim 64 (default)", 100, 64),
        ("+ NN refinement 100 + Griffin-Lim 256", 100, 256),
    ]:
        c.inverse_mel_iters, c.griffin_lim.n_iter = inv_iters, gl_iters
        t0 = time.process_time()
        back = domain.decode(x)
        rows.append((label, back, (time.process_time() - t0) / n))
    c.inverse_mel_iters, c.griffin_lim.n_iter = domain.options.inverse_mel_iters, domain.options.griffin_lim_iters

    print(f"{'decoder':50s} {'pitch acc':>9s} {'med |c|':>8s} {'STFT LSD':>9s} {'mel LSD':>8s} {'MFCC FD':>8s} {'cpu s/clip':>10s}")
    for label, w, secs in rows:
        acc = med = float("nan")
        if pitched is not None and pitched.any():
            p = metrics.pitch_accuracy(w[pitched], hz[pitched], c.sample_rate)
            acc, med = p["pitch_accuracy"], p["pitch_median_abs_cents"]
        lsd = metrics.log_spectral_distance(val, w, n_fft=c.n_fft, hop_length=c.hop_length)
        print(f"{label:50s} {acc:9.3f} {med:8.1f} {lsd:9.2f} {mel_lsd(c, val, w):8.2f} {metrics.frechet(feats(w), f_val):8.2f} {secs:10.4f}")

    if pitched is not None and pitched.any():
        # why the metric uses YIN: torchaudio's NCCF estimator picks integer lags
        import torchaudio.functional as AF

        f0 = AF.detect_pitch_frequency(val[pitched], c.sample_rate, freq_low=60, freq_high=1100).median(-1).values
        err = pitch.cents(f0, hz[pitched]).abs()
        print(f"torchaudio.functional.detect_pitch_frequency on the raw clips: {float((err <= 50).double().mean()):.3f} within 50 cents "
              f"(median |error| {float(err.median()):.1f} cents)")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
