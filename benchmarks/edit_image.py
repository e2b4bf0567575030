"""Editing digits with a trained image-unet run: the figures of docs/domains/image.md, "Editing".

    OMP_NUM_THREADS=1 python benchmarks/edit_image.py --run RUN [--out DIR] [--picture PNG]

1. **Inpainted half-digits.** Every held-out digit (the domain's val split, 359 digits) keeps its
   left half; its right half is generated with ``--class c``, c its true class
   (``--half right``). The domain's metric classifier (the one ``diffcore evaluate`` uses)
   should say c. Reported against the unedited conditional samples of the same classes (the
   same plan, from scratch), against the held-out digits themselves, and against inpainting
   without a class (the unconditional model, which must read the class off the kept half).
   The seam error is the mean absolute difference between the two pixel columns either side of
   the seam (columns 7 and 8 of 16, in [-1, 1] units), for the edits, the unedited samples and
   the real digits. With the run's sampler plan (DDIM, 50 steps) and with RePaint
   (``--resample 5``).
2. **SDEdit on a sketch**: a crude 3 drawn with numpy, edited at several strengths with
   ``--class 3``: the fraction classified 3 and the distance from the sketch.
3. **A class change by inversion**: held-out 3s inverted with DDIM (their own class), then
   sampled with ``--class 8``: the fraction classified 8; and the reconstruction error when
   sampled back with ``--class 3``.

It writes ``edit_image.json`` (every figure) and, with ``--picture``, one PNG showing examples
of the three. Every edit goes through the platform's ``editing.edit_run`` (what
``diffcore edit`` runs) on batches from the domain's :func:`diffcore_image.edit.tensor_batches`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from diffcore.platform import config as cfgmod
from diffcore.platform import editing, runs
from diffcore_image.edit import ImageEditOptions, labelled_rows, marked, region_keep, tensor_batches
from diffcore_image.metrics import FEATURES, MetricModel

R = 16
SEAM = R // 2  # --half right: columns 8.. are generated, 0..7 kept
SKETCH_NUM = 32  # SDEdit outputs per strength
STRENGTHS_SKETCH = (0.3, 0.5, 0.7, 0.9)
STRENGTHS_INVERT = (0.6, 0.8, 1.0)
CELL = 48  # pixels per image in the picture


def sketch_three(r: int = R) -> torch.Tensor:
    """A crude blocky 3 (three bars and a right stroke, 2 pixels thick), ``[1, r, r]`` in [-1, 1]."""
    a = -np.ones((r, r), np.float32)
    s = r / 16
    i = lambda v: int(round(v * s))  # noqa: E731
    for y in (1, 7, 13):
        a[i(y):i(y + 2), i(4):i(12)] = 1
    a[i(1):i(15), i(10):i(12)] = 1
    return torch.from_numpy(a)[None]


def seam_error(x: torch.Tensor) -> tuple[float, float]:
    """Mean |x[..., SEAM-1] - x[..., SEAM]| over images, channels and rows, and its standard
    error over the images."""
    per = (x[..., SEAM - 1] - x[..., SEAM]).abs().flatten(1).mean(1)
    return float(per.mean()), float(per.std() / len(per) ** 0.5)


def figures(pred, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Class consistency (fraction classified as ``y``) and the seam error, with standard errors."""
    p = float((pred(x) == y.numpy()).mean())
    seam, seam_se = seam_error(x)
    return {"class_consistency": p, "class_consistency_se": (p * (1 - p) / len(x)) ** 0.5,
            "seam_error": seam, "seam_error_se": seam_se}


def run_edits(run, plan, known, keep, *, classes, num=1, mode="inpaint", strength=None, resample=1, seed=0, batch=400):
    """Edited images ``[N*num, C, R, R]`` (in input order) through the platform."""
    batches = tensor_batches(known, keep, num, batch, labels=run.domain.labels, classes=classes)
    results = editing.edit_run(run, plan, list(batches), mode=mode, strength=strength, resample=resample, seed=seed)
    return torch.cat([x for x, _ in results]).float().clamp(-1, 1)


def unedited(run, plan, classes, seed=0, batch=400):
    gen = torch.Generator().manual_seed(seed)
    fn = runs.sample_fn(run, plan, gen)
    out = []
    for start in range(0, len(classes), batch):
        part = classes[start:start + batch]
        out.append(fn({"shape": (len(part), 1, R, R), "cond": torch.tensor(part, dtype=torch.long)}).cpu())
    return torch.cat(out).float().clamp(-1, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--out", type=Path, default=Path("edit_image.json"))
    ap.add_argument("--picture", type=Path, default=None)
    ap.add_argument("--resample", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None, help="sampling steps [default: the run's]")
    ap.add_argument("--limit", type=int, default=None, help="use the first N held-out digits only (a smoke test)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    run = runs.load_run(args.run)
    d = run.domain
    d.setup()
    train, val = d.train_dataset().data, d.val_dataset().data
    clf_val = len(val.x)
    if args.limit:
        val = type(val)(val.x[: args.limit], val.y[: args.limit], val.labels)
    clf = MetricModel(train.x, train.y, features=max(2, min(FEATURES, clf_val // 4)))  # as evaluate()
    pred = clf.predict
    plan = cfgmod.sampling_plan(run.config, key="cli", steps=args.steps)
    report: dict = {"run": str(args.run), "plan": {"sampler": plan.sampler, "steps": plan.steps, "spacing": plan.spacing,
                                                   "guidance": plan.guidance}, "num_heldout": len(val.x)}
    y = val.y.tolist()
    keep = region_keep(ImageEditOptions(half="right"), R).expand(len(val.x), 1, R, R)
    report["real_heldout"] = figures(pred, val.x, val.y)
    report["unedited_conditional"] = figures(pred, unedited(run, plan, y, seed=args.seed), val.y)
    inpaint, shown = {}, {}
    rp = f"repaint{args.resample}"
    for name, resample, classes in (("default", 1, y), (rp, args.resample, y), ("default_no_class", 1, None),
                                    (f"{rp}_no_class", args.resample, None)):
        t = time.time()
        x = run_edits(run, plan, val.x, keep, classes=classes, resample=resample, seed=args.seed)
        inpaint[name] = {**figures(pred, x, val.y), "kept_exact": bool(torch.equal(x[..., :SEAM], val.x[..., :SEAM])),
                         "seconds": round(time.time() - t, 1)}
        shown[name] = x
        print(name, inpaint[name], flush=True)
    report["inpaint_right_half"] = inpaint

    # SDEdit on a sketch, --class 3
    sk = sketch_three()[None]
    sdedit, shown_sk = {"num": SKETCH_NUM, "sketch_classified_3": bool(pred(sk)[0] == 3)}, {}
    for strength in STRENGTHS_SKETCH:
        x = run_edits(run, plan, sk, torch.zeros(1, 1, R, R), classes=[3], num=SKETCH_NUM, mode="sdedit",
                      strength=strength, seed=args.seed)
        sdedit[str(strength)] = {"classified_3": float((pred(x) == 3).mean()),
                                 "mean_abs_from_sketch": float((x - sk).abs().mean())}
        shown_sk[strength] = x
    report["sdedit_sketch_class3"] = sdedit
    print("sdedit", sdedit, flush=True)

    # class change by inversion: held-out 3s -> 8 (and back to 3: the reconstruction)
    threes = val.x[val.y == 3]
    nothing = torch.zeros(len(threes), 1, R, R)
    inv, shown_inv = {"num": len(threes)}, {}
    for strength in STRENGTHS_INVERT:
        to8 = run_edits(run, plan, threes, nothing, classes=[8], mode="invert", strength=strength, seed=args.seed)
        back = run_edits(run, plan, threes, nothing, classes=[3], mode="invert", strength=strength, seed=args.seed)
        inv[str(strength)] = {"classified_8": float((pred(to8) == 8).mean()),
                              "mean_abs_from_input": float((to8 - threes).abs().mean()),
                              "reconstruction_mean_abs": float((back - threes).abs().mean()),
                              "reconstruction_classified_3": float((pred(back) == 3).mean())}
        shown_inv[strength] = to8
    report["invert_3_to_8"] = inv
    print("invert", inv, flush=True)
    report["seconds"] = round(time.time() - t0, 1)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if args.picture:
        picture(args.picture, val, keep, shown, rp, sk, shown_sk, threes, shown_inv, args.resample, plan)


def picture(path, val, keep, shown, rp, sk, shown_sk, threes, shown_inv, resample, plan, k=10):
    """Three panels stacked: inpainting (the first held-out digit of each class), SDEdit of the
    sketch (a row per strength), held-out 3s inverted and sampled as 8s (a row per strength)."""
    import tempfile

    from PIL import Image, ImageDraw

    idx = [int(torch.nonzero(val.y == c)[0]) for c in range(10)][:k]
    panels = [
        (f"Inpaint the right half of held-out digits, --class c: {plan.sampler.upper()} {plan.steps}, RePaint (--resample {resample}), and without --class",
         [val.x[idx], marked(val.x[idx], keep[idx]), shown["default"][idx], shown[rp][idx], shown["default_no_class"][idx]],
         ["input", "region", "DDIM", "RePaint", "no class"]),
        ("SDEdit of a sketch (left), --class 3, a row per --strength",
         [torch.cat([sk, shown_sk[s][: k - 1]]) for s in STRENGTHS_SKETCH], [f"s={s}" for s in STRENGTHS_SKETCH]),
        ("Invert held-out 3s, sample back with --class 8, a row per --strength",
         [threes[:k]] + [shown_inv[s][:k] for s in STRENGTHS_INVERT], ["input"] + [f"s={s}" for s in STRENGTHS_INVERT]),
    ]
    images = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (title, rows, names) in enumerate(panels):
            img = Image.open(labelled_rows(rows, names, Path(tmp) / f"{i}.png", min_cell=CELL)).convert("RGB")
            head = Image.new("RGB", (img.width, 16), "white")
            ImageDraw.Draw(head).text((4, 3), title, fill=(0, 0, 0))
            images += [head, img]
    out = Image.new("RGB", (max(p.width for p in images), sum(p.height for p in images)), "white")
    y = 0
    for p in images:
        out.paste(p, (0, y))
        y += p.height
    out.save(path, optimize=True)


if __name__ == "__main__":
    main()
