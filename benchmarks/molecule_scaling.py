"""How sampling time and memory grow with molecule size, for a trained molecule-coords run.

    OMP_NUM_THREADS=1 python benchmarks/molecule_scaling.py --run RUN [--sizes 15 30 45 60] [--num 10] [--repeats 3]

For each size, one real drug-like molecule is picked deterministically from rdkit's own files
(two ChEMBL sets in RDConfig.RDContribDir, then RDConfig.RDDataDir/NCI/first_5K.smi): the largest
fragment of each entry; neutral, elements among H C N O F P S Cl Br I, at least one ring, no ring
of more than 8 atoms (no macrocycles), at least one rotatable bond; the heavy-atom count closest
to the size wins (ties: the first in file order). Its SMILES are printed.

For each molecule, ``diffcore sample --run RUN --smiles SMILES --num NUM --threads 1 --seed K
--accelerator cpu`` runs in a fresh subprocess, ``--repeats`` times (seeds 0, 1, ...): wall time
(median) and the peak RSS of that child alone (os.wait4's ru_maxrss, the largest over the
repeats). The baseline is a child that only imports what `diffcore sample` imports (the CLI,
torch, rdkit, the molecule plugin; not lightning, unused on one CPU process) and exits: its time
and RSS are the fixed cost; "s per conformer" is (median wall - baseline wall) / NUM. "ETKDG s"
is rdkit's ETKDG v3 EmbedMultipleConfs(NUM) on the same molecule with hydrogens (one thread, in
this process, median over the repeats). Torsions: diffcore_molecule.torsions.rotatable_torsions
on Chem.AddHs(mol).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rdkit import Chem, RDConfig, RDLogger
from rdkit.Chem import AllChem, rdMolDescriptors
from rdkit.Chem.MolStandardize import rdMolStandardize

CLI = [sys.executable, "-m", "diffcore.platform.cli"]
ELEMENTS = {"H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I"}
SOURCES = [Path(RDConfig.RDContribDir) / "fraggle/data/ChEMBL_11265_actives.smi",
           Path(RDConfig.RDContribDir) / "FreeWilson/data/CHEMBL2321810.smi",
           Path(RDConfig.RDDataDir) / "NCI/first_5K.smi"]
IMPORTS = "import diffcore.platform.cli, torch, rdkit.Chem, diffcore_molecule.plugin"  # sample does not import lightning


def candidates() -> list[Chem.Mol]:
    """Every usable molecule of SOURCES, in file order."""
    RDLogger.DisableLog("rdApp.*")
    chooser, out = rdMolStandardize.LargestFragmentChooser(), []
    for path in SOURCES:
        for line in path.read_text().splitlines():
            mol = Chem.MolFromSmiles(line.split()[0]) if line.strip() else None
            if mol is None:
                continue
            mol = chooser.choose(mol)
            rings = mol.GetRingInfo().AtomRings()
            if (any(a.GetSymbol() not in ELEMENTS or a.GetFormalCharge() for a in mol.GetAtoms()) or not rings
                    or max(map(len, rings)) > 8 or rdMolDescriptors.CalcNumRotatableBonds(mol) < 1):
                continue
            out.append(mol)
    return out


def child(cmd: list[str], log: Path) -> tuple[float, float]:
    """(wall s, peak RSS MB) of one subprocess; exits with its log if it fails."""
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{log.read_text()[-3000:]}")
    return wall, usage.ru_maxrss / 1024  # Linux: kilobytes


def etkdg_seconds(mol: Chem.Mol, num: int, seed: int) -> float:
    params = AllChem.ETKDGv3()
    params.randomSeed, params.numThreads = seed, 1
    start = time.perf_counter()
    ids = AllChem.EmbedMultipleConfs(mol, num, params)
    if len(ids) != num:
        print(f"  (ETKDG embedded {len(ids)} of {num})")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--sizes", type=int, nargs="+", default=[15, 30, 45, 60])
    ap.add_argument("--num", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None, help="Where the samples go [default: a new temporary folder].")
    a = ap.parse_args()
    from diffcore_molecule.torsions import rotatable_torsions
    work = a.workdir or Path(tempfile.mkdtemp(prefix="molecule-scaling-"))
    work.mkdir(parents=True, exist_ok=True)
    pool = candidates()
    base = [child([sys.executable, "-c", IMPORTS], work / f"baseline-{r}.log") for r in range(a.repeats)]
    base_wall, base_rss = statistics.median(w for w, _ in base), max(m for _, m in base)
    rows = []
    for size in a.sizes:
        mol = min(pool, key=lambda m: abs(m.GetNumHeavyAtoms() - size))  # min keeps the first of ties
        smiles, molh = Chem.MolToSmiles(mol), Chem.AddHs(mol)
        torsions = len(rotatable_torsions(molh)[0])
        print(f"size {size}: {mol.GetNumHeavyAtoms()} heavy, {molh.GetNumAtoms()} atoms, {torsions} torsions: {smiles}",
              flush=True)
        runs, etkdg = [], []
        for r in range(a.repeats):
            out = work / f"{size}-{r}"
            runs.append(child(CLI + ["sample", "--run", str(a.run), "--smiles", smiles, "--num", str(a.num), "--out", str(out),
                                     "--threads", "1", "--seed", str(r), "--accelerator", "cpu"], work / f"{size}-{r}.log"))
            etkdg.append(etkdg_seconds(Chem.Mol(molh), a.num, r))
            print(f"  repeat {r}: sample {runs[-1][0]:.1f} s, {runs[-1][1]:.0f} MB; ETKDG {etkdg[-1]:.2f} s", flush=True)
        wall = statistics.median(w for w, _ in runs)
        rows.append((mol.GetNumHeavyAtoms(), molh.GetNumAtoms(), torsions, wall, (wall - base_wall) / a.num,
                     max(m for _, m in runs), statistics.median(etkdg)))
    print(f"\n`diffcore sample` of {a.num} conformers per molecule, 1 thread, CPU; median of {a.repeats} "
          f"(peak RSS: the largest); samples in {work}\n")
    print("| heavy atoms | atoms | torsions | sample wall s (median) | s per conformer | peak RSS MB | ETKDG s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for heavy, atoms, tors, wall, per, rss, et in rows:
        print(f"| {heavy} | {atoms} | {tors} | {wall:.1f} | {per:.2f} | {rss:.0f} | {et:.2f} |")
    print(f"\nBaseline (imports only, then exit): {base_wall:.1f} s, {base_rss:.0f} MB peak RSS. "
          f"s per conformer = (wall - {base_wall:.1f} s) / {a.num}.")


if __name__ == "__main__":
    main()
