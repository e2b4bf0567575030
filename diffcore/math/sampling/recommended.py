"""Recommended sampler, spacing and options per (schedule or family, NFE budget), chosen on the
tuning half of the exact target suite (diffcore.testing.suite.TUNING) by benchmarks/frontier.py
matrix + tune; generated, do not edit: rerun the script. Reported on the held-out half in
docs/benchmarks.md."""

CRITERION = 'log'  # how the tuning targets' z were summed up (chosen by leave-one-target-out)

# schedule name (its own rows) or family (pooled, for other schedules of that family)
# -> [(nfe, sampler, spacing, options, mean z on the tuning targets)], nfe ascending
RECOMMENDED = {
    'linear': [
        (4, 'unipc-bh1', 'leading-multistep', {'order': 2}, 19.19),
        (5, 'dpm-solver++3m', 'leading-multistep', {}, 10.76),
        (6, 'unipc', 'leading-multistep', {}, 7.39),
        (8, 'ipndm', 'logsnr', {'order': 3}, 0.9),
        (10, 'ipndm', 'logsnr', {'order': 3}, -0.07),
        (15, 'deis', 'logsnr', {}, -0.15),
        (20, 'deis', 'karras', {}, -0.14),
        (50, 'heun', 'logsnr', {}, -0.14),
    ],
    'cosine': [
        (4, 'unipc-bh1', 'trailing', {}, 24.63),
        (5, 'unipc-bh1', 'trailing', {}, 12.69),
        (6, 'unipc-bh1', 'trailing', {}, 7.23),
        (8, 'ipndm', 'logsnr', {'order': 3}, 1.5),
        (10, 'ipndm', 'logsnr', {'order': 3}, 0.0),
        (15, 'ipndm', 'logsnr', {'order': 3}, -0.16),
        (20, 'deis', 'karras', {}, -0.15),
        (50, 'deis', 'linspace', {'order': 2}, -0.14),
    ],
    'flow': [
        (4, 'unipc-bh1', 'trailing', {}, 15.42),
        (5, 'unipc-bh1', 'trailing', {}, 6.27),
        (6, 'unipc-bh1', 'trailing', {}, 2.89),
        (8, 'unipc-bh1', 'trailing', {}, 1.21),
        (10, 'ipndm', 'linspace', {'order': 3}, 0.46),
        (15, 'deis', 'karras', {}, -0.18),
        (20, 'ipndm', 'linspace', {'order': 3}, -0.16),
        (50, 'unipc', 'logsnr', {'order': 1}, -0.16),
    ],
    'vp': [
        (4, 'unipc-bh1', 'trailing', {'order': 2}, 34.78),
        (5, 'unipc', 'trailing', {'order': 3}, 17.61),
        (6, 'unipc', 'trailing', {}, 10.43),
        (8, 'ipndm', 'logsnr', {'order': 3}, 1.2),
        (10, 'ipndm', 'logsnr', {'order': 3}, -0.03),
        (15, 'ipndm', 'logsnr', {'order': 3}, -0.15),
        (20, 'deis', 'karras', {}, -0.14),
        (50, 'heun', 'logsnr', {}, -0.15),
    ],
}
