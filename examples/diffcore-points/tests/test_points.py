"""The plugin's own tests, as a plugin author writes them: diffcore's conformance kit checks
every hook, the domain, both backbones, the sampler and the schedule, and says what to fix.

    pip install -e examples/diffcore-points && pytest examples/diffcore-points/tests
"""

import diffcore.testing

import diffcore_points.plugin


def test_points_plugin_conforms():
    diffcore.testing.check_plugin(
        diffcore_points.plugin,
        name="points",
        domain_options={"points": {"num": 256}, "image": {"resolution": 8}},  # small data: seconds
        backbone_options={"image-mlp": {"width": 32, "depth": 1}},
        evaluate=True,
    )


def test_each_data_set_conforms():
    from diffcore_points.domain import PointsDomain

    for name in ("two-moons", "swiss-roll", "8-gaussians"):
        diffcore.testing.check_domain(PointsDomain, options={"dataset": name, "num": 128})
