"""Recommended sampler and spacing per (schedule or family, NFE budget), chosen on the tuning
half of the exact target suite (diffcore.testing.suite.TUNING) by benchmarks/frontier.py tune;
generated, do not edit: rerun the script. Reported on the held-out half in docs/benchmarks.md."""

# schedule name (its own rows) or family (pooled, for other schedules of that family)
# -> [(nfe, sampler, spacing, mean z on the tuning targets)], nfe ascending
RECOMMENDED = {
    'linear': [
        (4, 'dpm-solver++3m', 'leading-multistep', 20.28),
        (5, 'dpm-solver++3m', 'leading-multistep', 10.76),
        (6, 'dpm-solver++3m', 'leading-multistep', 7.1),
        (8, 'ipndm', 'logsnr', 1.73),
        (10, 'ipndm', 'logsnr', 0.04),
        (15, 'deis', 'karras', -0.15),
        (20, 'deis', 'logsnr', -0.14),
        (50, 'heun', 'logsnr', -0.14),
    ],
    'cosine': [
        (4, 'unipc-bh1', 'trailing', 24.63),
        (5, 'unipc-bh1', 'trailing', 12.69),
        (6, 'unipc-bh1', 'trailing', 7.23),
        (8, 'ipndm', 'logsnr', 2.43),
        (10, 'ipndm', 'logsnr', 0.14),
        (15, 'deis', 'karras', -0.16),
        (20, 'deis', 'karras', -0.15),
        (50, 'heun', 'logsnr', -0.15),
    ],
    'vp': [
        (4, 'unipc', 'trailing', 38.13),
        (5, 'unipc', 'trailing', 18.25),
        (6, 'unipc', 'trailing', 10.43),
        (8, 'ipndm', 'logsnr', 2.08),
        (10, 'ipndm', 'logsnr', 0.09),
        (15, 'deis', 'karras', -0.16),
        (20, 'deis', 'karras', -0.14),
        (50, 'heun', 'logsnr', -0.15),
    ],
    'flow': [
        (4, 'unipc-bh1', 'linspace', 47.61),
        (5, 'unipc-bh1', 'linspace', 15.35),
        (6, 'unipc-bh1', 'linspace', 6.22),
        (8, 'unipc-bh1', 'linspace', 1.71),
        (10, 'ipndm', 'linspace', 0.67),
        (15, 'deis', 'karras', -0.18),
        (20, 'deis', 'logsnr', -0.18),
        (50, 'unipc-bh1', 'logsnr', -0.15),
    ],
}
