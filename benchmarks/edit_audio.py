"""Pitch consistency of audio continuations (docs/domains/audio.md, section "Editing").

For held-out synthesized notes of known pitch (the run's embedded data, another seed than
training), written as 16-bit WAV files and edited through the domain's own input path
(``AudioDomain.edit_batches``): keep the first ``--keep`` seconds, generate the rest
(``diffcore edit --keep 0:K``), render the audio as ``diffcore edit`` writes it, estimate the
pitch of the generated part (YIN, ``diffcore_audio.pitch``) and count the continuations within
50 cents of the kept part's pitch (estimated on the input's kept samples). Rows:

- edits without ``--class`` (the model hears only the kept part) and with the note's own class,
  each with RePaint resampling 1 (plain replacement) and each ``--resample`` value;
- the reference: *unedited* samples of the same class (the same part of the clip), compared
  with the same kept parts: what class conditioning alone gives; and unedited samples without
  a class (every class in turn): chance;
- ceilings: the held-out clip's own second part, raw and rendered through the same
  vocoder path with its first part kept (the true spectrogram "generated").

    python benchmarks/edit_audio.py --run RUN --per-class 8 --resample 1 4 10 --threads 1 --picture docs/domains/audio-edit.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from diffcore.platform import config, runs  # noqa: E402


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def consistency(f_gen: torch.Tensor, f_kept: torch.Tensor) -> dict:
    """Fraction within 50 cents (no estimate = a miss), its 95% Wilson interval, the median
    absolute error in cents and the fraction with an estimate."""
    from diffcore_audio.pitch import cents

    err = cents(f_gen, f_kept).abs()
    hit = (err <= 50) & ~err.isnan()
    k, n = int(hit.sum()), len(hit)
    lo, hi = wilson(k, n)
    return {"within_50_cents": k / n, "ci95": [lo, hi], "n": n,
            "median_abs_cents": float(err.nanmedian()) if (~err.isnan()).any() else math.nan,
            "detected": float((~err.isnan()).double().mean())}


def edit_xs(run, plan, batches, resample: int, seed: int) -> list[tuple[torch.Tensor, dict]]:
    """``diffcore edit``'s own path (the platform's edit_run, mode inpaint)."""
    from diffcore.platform import editing

    return editing.edit_run(run, plan, batches, mode="inpaint", strength=1.0, resample=resample, seed=seed)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--per-class", type=int, default=8, help="held-out notes per pitched class")
    ap.add_argument("--keep", type=float, default=0.25, help="seconds kept at the start (the rest is generated)")
    ap.add_argument("--resample", type=int, nargs="+", default=[1, 4], help="RePaint resampling values to measure")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the run's)")
    ap.add_argument("--sampler", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--out", default=None, help="write results.json here")
    ap.add_argument("--picture", default=None, help="write a before/after PNG of three edits here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    import soundfile as sf
    from diffcore_audio import synth
    from diffcore_audio.edit import AudioEditOptions, render, write_before_after_png
    from diffcore_audio.pitch import estimate_pitch

    run = runs.load_run(args.run)
    domain, codec = run.domain, run.domain.codec
    domain.setup()  # the held-out clips (the embedded data's second seed); the run's normalisation stays
    plan = config.sampling_plan(run.config, key="cli", steps=args.steps, sampler=args.sampler)
    labels = domain.labels
    pitched = [c for c, name in enumerate(labels) if synth.note_to_hz(name) is not None]
    idx = torch.cat([(domain.val_ids == c).nonzero()[: args.per_class, 0] for c in pitched])
    waves, ids = domain.val_waves[idx], domain.val_ids[idx]
    cut = int(round(args.keep * codec.sample_rate))
    tmp = Path(tempfile.mkdtemp(prefix="edit_audio_"))
    paths = []
    for i, w in enumerate(waves):
        paths.append(str(tmp / f"{i:04d}_{labels[int(ids[i])]}.wav"))
        sf.write(paths[-1], w.numpy(), codec.sample_rate, subtype="PCM_16")
    inputs = torch.stack([torch.from_numpy(sf.read(p, dtype="float32")[0]) for p in paths])  # as quantised
    f_kept = estimate_pitch(inputs[:, :cut], codec.sample_rate)
    opts = AudioEditOptions(keep=f"0:{args.keep:g}")
    print(f"{len(paths)} held-out notes ({args.per_class} of each of {len(pitched)} pitched classes); keep 0:{args.keep:g} s; "
          f"{plan.sampler} {plan.steps} steps; kept-part pitch found for {int((~f_kept.isnan()).sum())}", file=sys.stderr)

    rows: dict[str, dict] = {}
    rows["real: the clip's own continuation (raw audio)"] = consistency(estimate_pitch(inputs[:, cut:], codec.sample_rate), f_kept)
    truth = domain.edit_batches(paths, 1, len(paths), options=opts)[0]
    rendered = render(domain, truth["known"], truth)
    rows["real: the clip's own spectrogram, rendered as an edit"] = consistency(estimate_pitch(rendered[:, cut:], codec.sample_rate), f_kept)

    # unedited samples of the same class: the same part of the clip
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    xs = []
    for b in domain.sample_batches(len(paths), args.batch_size, classes=ids.tolist()):
        xs.append(runs.generate_batch(run.net, plan, domain, b, generator=gen).cpu())
    plain = domain.decode(torch.cat(xs))
    rows["unedited samples of the same class (reference)"] = consistency(estimate_pitch(plain[:, cut:], codec.sample_rate), f_kept)
    rows["unedited samples of the same class (reference)"]["seconds"] = time.time() - t0
    xs = [runs.generate_batch(run.net, plan, domain, {k: v for k, v in b.items() if k != "cond"}, generator=gen).cpu()
          for b in domain.sample_batches(len(paths), args.batch_size)]
    rows["unedited samples without --class (chance)"] = consistency(estimate_pitch(domain.decode(torch.cat(xs))[:, cut:], codec.sample_rate), f_kept)

    pictures = []
    for cond in ("no --class", "--class = the note's"):
        for r in args.resample:
            batches = list(domain.edit_batches(paths, 1, args.batch_size, classes=ids.tolist() if cond != "no --class" else None, options=opts))
            t0 = time.time()
            results = edit_xs(run, plan, batches, r, args.seed)
            secs = time.time() - t0
            kept_err = max(float(((x - b["known"]).abs() * b["keep"]).max()) for x, b in results)
            out = torch.cat([render(domain, x, b) for x, b in results])
            row = consistency(estimate_pitch(out[:, cut:], codec.sample_rate), f_kept)
            row.update(seconds=secs, kept_max_abs_error=kept_err, resample=r)
            rows[f"edit, {cond}, resample {r}"] = row
            print(f"{cond}, resample {r}: {row['within_50_cents']:.3f} in {secs:.0f} s", file=sys.stderr)
            if cond == "no --class" and r in (args.resample[0], args.resample[-1]):
                x, b = results[0]
                pictures.append((b["known"][0], b["keep"][0], x[0], Path(b["inputs"][0]).name, f"--keep 0:{args.keep:g} --resample {r}"))

    if args.picture and pictures:  # the first input at the first and last resample value, and a repair
        gap = domain.edit_batches([paths[6 * args.per_class]], 1, 1, options=AudioEditOptions(gap="0.2:0.3"))
        (x, b), = edit_xs(run, plan, gap, args.resample[-1], args.seed)
        pictures.append((b["known"][0], b["keep"][0], x[0], Path(b["inputs"][0]).name, f"--gap 0.2:0.3 --resample {args.resample[-1]}"))
        write_before_after_png(Path(args.picture), pictures[-3:], codec)

    result = {"run": str(args.run), "sampler": plan.sampler, "steps": plan.steps, "keep_seconds": args.keep,
              "per_class": args.per_class, "num": len(paths), "seed": args.seed, "rows": rows}
    print("| | within 50 cents of the kept part (95% CI) | median error (cents) | pitch found | s |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        lo, hi = r["ci95"]
        print(f"| {name} | {r['within_50_cents']:.3f} ({lo:.2f}-{hi:.2f}) | {r['median_abs_cents']:.1f} | {r['detected']:.2f} | {r.get('seconds', float('nan')):.0f} |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
