"""Recommended sampler and spacing per (schedule family, NFE budget), chosen on the tuning
half of the exact target suite (diffcore.testing.suite.TUNING) by benchmarks/frontier.py tune;
generated, do not edit: rerun the script. Reported on the held-out half in docs/benchmarks.md."""

# family -> [(nfe, sampler, spacing, mean z on the tuning targets)], nfe ascending
RECOMMENDED = {
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
