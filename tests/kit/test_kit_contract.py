"""The conformance kit and the grown Domain signatures: write_samples gets the sample options,
evaluate a batch size it must respect; a domain of the old form passes with a warning."""

from __future__ import annotations

from toyplug.domain import OldFormToyDomain, ToyDomain

from diffcore.testing.domain import check_domain

SMALL = {"num": 16}


class IgnoresBatchSize(ToyDomain):
    name = "kit-one-big-batch"

    def evaluate(self, sample_fn, num, out_dir, batch_size):
        return super().evaluate(sample_fn, num, out_dir, batch_size=num)  # FAULT: one batch of num


def test_the_current_forms_pass_without_warnings(tmp_path):
    rep = check_domain(ToyDomain, SMALL, workdir=tmp_path, evaluate=True, raise_on_failure=False)
    assert rep.ok and not rep.warnings, str(rep)
    assert any("evaluate respects batch_size" in p for p in rep.passed)


def test_old_forms_pass_with_a_warning_naming_the_new_signature(tmp_path):
    rep = check_domain(OldFormToyDomain, SMALL, workdir=tmp_path, evaluate=True, raise_on_failure=False)
    assert rep.ok, str(rep)
    assert any("write_samples has the old signature; define write_samples(self, results, out_dir, options)" in w
               for w in rep.warnings), rep.warnings
    assert any("evaluate has the old signature; define evaluate(self, sample_fn, num, out_dir, batch_size)" in w
               for w in rep.warnings), rep.warnings


def test_an_evaluate_that_ignores_the_batch_size_is_a_problem(tmp_path):
    rep = check_domain(IgnoresBatchSize, SMALL, workdir=tmp_path, evaluate=True, raise_on_failure=False)
    assert not rep.ok
    assert any("evaluate(..., batch_size=4) asked sample_fn for a batch of 8" in p for p in rep.problems), rep.problems
