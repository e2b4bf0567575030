"""The kit's autoencoder check through check_plugin: a plugin's autoencoder for an installed
domain is checked (shapes, a short fit, reload) with the options and steps it is given."""

from __future__ import annotations

import diffcore.testing as dt
from diffcore import AutoencoderSpec, KLAutoencoderOptions, build_kl_autoencoder, hookimpl


class Plugin:
    @hookimpl
    def diffcore_register_autoencoders(self, register):
        register(AutoencoderSpec("kit-kl", "image", lambda o, d: build_kl_autoencoder(o, d.channels), Options=KLAutoencoderOptions))


class WrongDomain:
    @hookimpl
    def diffcore_register_autoencoders(self, register):
        register(AutoencoderSpec("kit-nowhere", "no-such-domain", lambda o, d: None))


def test_check_plugin_checks_its_autoencoders():
    report = dt.check_plugin(Plugin(), name="kit-ae", domain_options={"image": {"resolution": 8}},
                             autoencoder_options={"kit-kl": {"channels": 8, "channel_mult": [1, 2]}}, autoencoder_steps=80)
    assert report.ok, str(report)
    assert any("kit-kl" in p and "close to x" in p for p in report.passed)


def test_an_autoencoder_of_a_missing_domain_is_skipped():
    report = dt.check_plugin(WrongDomain(), name="kit-ae-nowhere", raise_on_failure=False)
    assert any("autoencoder 'kit-nowhere'" in s and "not available" in s for s in report.skipped), report.skipped
