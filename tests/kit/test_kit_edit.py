"""The conformance kit checks a domain's editing side: a correct edit_batches/write_edits pass,
a wrong ``known`` shape, a non-binary ``keep`` and a wrong count are each reported; a domain
without editing is skipped with the reason."""

from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from diffcore.contract.domain import Domain
from diffcore.testing.domain import check_domain


class Pairs(Domain):
    """2-D points; an input is "x,y"; editing keeps x and generates y."""

    name = "kit-pairs"
    flaw = None

    def setup(self):
        self.data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))

    def train_dataset(self):
        return _Items(self.data)

    def sample_batches(self, num, batch_size, classes=None, options=None):
        for i in range(0, num, batch_size):
            yield {"shape": (min(batch_size, num - i), 2)}

    def write_samples(self, results, out_dir, options=None):
        path = Path(out_dir) / "points.csv"
        path.write_text("\n".join(f"{a:.4f},{b:.4f}" for x, _ in results for a, b in x.tolist()) + "\n")
        return [path]

    def edit_batches(self, inputs, num, batch_size, classes=None, options=None):
        rows = [torch.tensor([float(v) for v in s.split(",")]) for s in inputs for _ in range(num)]
        for i in range(0, len(rows), batch_size):
            known = torch.stack(rows[i:i + batch_size])
            keep = torch.tensor([1.0, 0.0]) if self.flaw != "keep" else torch.tensor([0.5, 0.0])
            if self.flaw == "known":
                known = known[:, :1]
            yield {"shape": (len(rows[i:i + batch_size]) + (self.flaw == "count"), 2), "known": known, "keep": keep}


class _Items(TensorDataset):
    def __getitem__(self, i):
        return {"x": self.tensors[0][i]}


def _report(flaw, tmp_path, inputs=("0.5,1", "-1,2")):
    cls = type(f"Pairs_{flaw}", (Pairs,), {"flaw": flaw})
    return check_domain(cls, workdir=tmp_path, edit_inputs=list(inputs), raise_on_failure=False)


def test_a_correct_editing_side_passes(tmp_path):
    rep = _report(None, tmp_path)
    assert rep.ok, str(rep)
    assert any("write_edits writes files inside out_dir" in p for p in rep.passed)


def test_flaws_are_reported(tmp_path):
    assert "'known' is" in str(_report("known", tmp_path / "a"))
    assert "'keep' is not a binary tensor" in str(_report("keep", tmp_path / "b"))
    assert "not 2 per input" in str(_report("count", tmp_path / "c"))


def test_without_inputs_or_editing_it_is_skipped(tmp_path):
    assert "pass edit_inputs" in str(check_domain(Pairs, workdir=tmp_path / "a", raise_on_failure=False))

    class Plain(Pairs):
        edit_batches = Domain.edit_batches

    assert "does not override edit_batches" in str(check_domain(Plain, workdir=tmp_path / "b", raise_on_failure=False))
