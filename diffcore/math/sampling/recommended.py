"""Recommended sampler, spacing and options per (schedule or family, NFE budget), chosen on the
tuning half of the exact target suite (diffcore.testing.suite.TUNING) by benchmarks/frontier.py
matrix + tune; generated, do not edit: rerun the script. Reported on the held-out half in
docs/benchmarks.md."""

CRITERION = 'mean'  # how the tuning targets' z were summed up (chosen by leave-one-target-out)

# schedule name (its own rows) or family (pooled, for other schedules of that family)
# -> [(nfe, sampler, spacing, options, mean z on the tuning targets)], nfe ascending
RECOMMENDED = {
    'linear': [
        (4, 'unipc-bh1', 'leading-multistep', {'order': 2}, 19.19),
        (5, 'dpm-solver++3m', 'leading-multistep', {}, 10.76),
        (6, 'dpm-solver++3m', 'leading-multistep', {}, 7.1),
        (8, 'ipndm', 'logsnr', {'order': 3}, 0.9),
        (10, 'ipndm', 'logsnr', {'order': 3}, -0.07),
        (15, 'deis', 'karras', {}, -0.15),
        (20, 'deis', 'logsnr', {}, -0.14),
        (50, 'heun', 'logsnr', {}, -0.14),
    ],
    'cosine': [
        (4, 'unipc-bh1', 'trailing', {}, 24.63),
        (5, 'unipc-bh1', 'trailing', {}, 12.69),
        (6, 'unipc-bh1', 'trailing', {}, 7.23),
        (8, 'ipndm', 'logsnr', {'order': 3}, 1.5),
        (10, 'ipndm', 'logsnr', {'order': 3}, 0.0),
        (15, 'deis', 'karras', {}, -0.16),
        (20, 'deis', 'karras', {}, -0.15),
        (50, 'heun', 'logsnr', {}, -0.15),
    ],
    'flow': [
        (4, 'unipc-bh1', 'linspace', {}, 47.61),
        (5, 'unipc-bh1', 'linspace', {}, 15.35),
        (6, 'unipc-bh1', 'linspace', {}, 6.22),
        (8, 'unipc-bh1', 'linspace', {}, 1.71),
        (10, 'ipndm', 'linspace', {'order': 3}, 0.46),
        (15, 'deis', 'karras', {}, -0.18),
        (20, 'deis', 'logsnr', {}, -0.18),
        (50, 'unipc', 'logsnr', {'order': 1}, -0.16),
    ],
    'vp': [
        (4, 'unipc-bh1', 'trailing', {'order': 2}, 34.78),
        (5, 'unipc-bh1', 'trailing', {'order': 3}, 17.4),
        (6, 'unipc-bh1', 'trailing', {'order': 3}, 9.27),
        (8, 'ipndm', 'logsnr', {'order': 3}, 1.2),
        (10, 'ipndm', 'logsnr', {'order': 3}, -0.03),
        (15, 'deis', 'karras', {}, -0.16),
        (20, 'deis', 'karras', {}, -0.14),
        (50, 'heun', 'logsnr', {}, -0.15),
    ],
}
