"""Recommended sampler, spacing and options per (schedule or family, NFE budget), chosen on the
tuning half of the exact target suite (diffcore.testing.suite.TUNING) by benchmarks/frontier.py
matrix + tune; generated, do not edit: rerun the script. Reported on the held-out half in
docs/benchmarks.md."""

CRITERION = 'log'  # how the tuning targets' z were summed up (chosen by leave-one-target-out)

# schedule name (its own rows) or family (pooled, for other schedules of that family)
# -> [(nfe, sampler, spacing, options, mean z on the tuning targets[, grid])], nfe ascending;
# spacing 'tuned': the row's grid, log-SNR fractions from the noisiest time (0) to t_min (1)
# (diffcore.math.sampling.grid.tuned_times), searched on the tuning targets
RECOMMENDED = {
    'linear': [
        (4, 'ipndm', 'tuned', {'order': 3}, 8.85, [0.0, 0.3477, 0.5168, 0.6463]),
        (5, 'ipndm', 'tuned', {'order': 3}, 3.5, [0.0, 0.2949, 0.418, 0.5473, 0.6617]),
        (6, 'ipndm', 'tuned', {'order': 3}, 2.49, [0.0, 0.1581, 0.3414, 0.461, 0.5585, 0.6608]),
        (8, 'unipc-bh1', 'tuned', {}, 0.7, [0.0, 0.3241, 0.4353, 0.4996, 0.5616, 0.6055, 0.6664, 0.7607]),
        (10, 'ipndm', 'logsnr', {'order': 3}, -0.07),
        (15, 'deis', 'logsnr', {}, -0.15),
        (20, 'deis', 'karras', {}, -0.14),
        (50, 'heun', 'logsnr', {}, -0.14),
    ],
    'cosine': [
        (4, 'ipndm', 'tuned', {'order': 3}, 10.07, [0.0, 0.332, 0.4757, 0.595]),
        (5, 'ipndm', 'tuned', {'order': 3}, 3.76, [0.0, 0.2835, 0.4006, 0.52, 0.6282]),
        (6, 'unipc-bh1', 'tuned', {}, 2.21, [0.0, 0.3209, 0.4139, 0.4996, 0.5588, 0.6526]),
        (8, 'ipndm', 'tuned', {'order': 3}, 0.19, [0.0, 0.2069, 0.3399, 0.4545, 0.5291, 0.6001, 0.7129, 0.9963]),
        (10, 'ipndm', 'tuned', {'order': 3}, -0.14, [0.0, 0.2067, 0.3227, 0.4015, 0.4635, 0.5251, 0.5924, 0.6919, 0.8606, 0.9996]),
        (15, 'ipndm', 'logsnr', {'order': 3}, -0.16),
        (20, 'deis', 'karras', {}, -0.15),
        (50, 'deis', 'linspace', {'order': 2}, -0.14),
    ],
    'flow': [
        (4, 'ipndm', 'tuned', {'order': 3}, 9.01, [0.0, 0.2921, 0.4255, 0.5285]),
        (5, 'ipndm', 'tuned', {'order': 3}, 3.71, [0.0, 0.2506, 0.345, 0.4459, 0.537]),
        (6, 'unipc-bh1', 'tuned', {}, 2.17, [0.0, 0.2794, 0.3421, 0.4214, 0.4781, 0.5605]),
        (8, 'unipc-bh1', 'tuned', {}, 0.79, [0.0, 0.2728, 0.3446, 0.3932, 0.4487, 0.4909, 0.5405, 0.6086]),
        (10, 'ipndm', 'tuned', {'order': 3}, -0.14, [0.0, 0.2014, 0.2821, 0.3461, 0.3971, 0.4366, 0.4787, 0.5297, 0.6185, 0.999]),
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
