"""The examples and the benchmark suite run as written."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_custom_model_example_trains_a_users_own_pair():
    terms = load(ROOT / "examples" / "custom_model.py").main(steps=30)
    assert set(terms) == {"loss", "recon", "kl", "marginal", "jsd", "mi"}
    assert all(math.isfinite(v) for v in terms.values())


def test_readme_snippet_is_the_example():
    """The README shows the example's model and guide verbatim."""
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "examples" / "custom_model.py").read_text()
    start = example.index("def model(")
    end = example.index("def make_data(")
    for line in example[start:end].strip().splitlines():
        assert line in readme, line


@pytest.mark.slow
def test_benchmark_suite_runs_in_smoke_mode(tmp_path):
    pytest.importorskip("numpyro")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    path = Path(done.stdout.strip().splitlines()[-1])
    assert path == tmp_path / "benchmark.json"
    result = json.loads(path.read_text())
    for key in (
        "pyro_vs_traceenum",
        "pyro_vs_torch",
        "numpyro_vs_jax",
        "numpyro_speedup_vs_pyro",
        "matmul_fraction",
        "mmd_fraction",
    ):
        assert result[key] and all(isinstance(v, float) and v > 0 for v in result[key].values()), key
    assert result["device"].startswith(("cpu", "gpu"))
    assert (tmp_path / "benchmark.md").read_text().startswith("Device:")
    # The tables re-made from the saved raw figures are the same.
    again = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--tables-from", str(path), "--out", str(tmp_path / "again")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((tmp_path / "again" / "benchmark.json").read_text()) == result
    assert (tmp_path / "again" / "benchmark.md").read_text() == (tmp_path / "benchmark.md").read_text()


@pytest.mark.slow
def test_step_benchmark_takes_turns_and_bounds_its_ratios(tmp_path):
    """``benchmarks/pyro_step.py``: every case's process takes the same number of blocks (in turns), and
    each ratio to the NumPyro step is the ratio of the means, inside its bootstrap interval."""
    pytest.importorskip("numpyro")
    out = tmp_path / "steps.json"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "pyro_step.py"),
        "--config",
        str(ROOT / "examples" / "digits" / "standard_vae.yaml"),
    ]
    command += ["--steps", "40", "--block", "10", "--cases", "pyro", "torch", "numpyro", "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(out.read_text())
    (result,) = figures["rounds"]
    assert {len(r["blocks"]) for r in result.values()} == {3}  # (40 - the NumPyro chunk of 10) // 10
    # One block at a time, in turns: pyro torch numpyro, then numpyro torch pyro, then as the first.
    spans = sorted((start, end, case) for case, r in result.items() for start, end in r["spans"])
    assert all(end <= next_start for (_, end, _), (next_start, _, _) in zip(spans, spans[1:]))
    order = ["pyro", "torch", "numpyro"]
    assert [case for _, _, case in spans] == order + order[::-1] + order
    for ratio in figures["ratios"]:
        blocks = result[ratio["case"]]["blocks"]
        assert ratio["ratio"] == pytest.approx(sum(blocks) / sum(result["numpyro"]["blocks"]))
        assert ratio["low"] <= ratio["ratio"] <= ratio["high"]
    assert "| 1 | torch |" in done.stdout


def test_paired_ratio_of_proportional_series_is_exact_and_its_interval_tracks_the_noise(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # pyro_step imports its neighbour, child
    steps = load(ROOT / "benchmarks" / "pyro_step.py")
    drifting = [1.0, 1.5, 2.0, 1.2, 0.8, 1.7]  # the machine's speed, shared by both cases in each turn
    exact = steps.paired_ratio([2 * t for t in drifting], drifting)
    assert exact == {"ratio": 2.0, "low": 2.0, "high": 2.0, "median_turn": 2.0}
    noisy = steps.paired_ratio([2 * t * (1 + e) for t, e in zip(drifting, [0.1, -0.1, 0.05, -0.05, 0.1, -0.1])], drifting)
    assert noisy["low"] < noisy["ratio"] < noisy["high"] and 1.8 < noisy["low"] and noisy["high"] < 2.2


def test_benchmark_floors_compute_the_librarys_objective():
    """The hand-written steps the benchmark holds the library to compute the same loss (discrete latent:
    no sampling), so that their times are a floor for the same work."""
    import jax
    import pyro

    from infovae.objectives import InfoVAE_ELBO

    steps = load(ROOT / "benchmarks" / "steps.py")
    batch, hidden = 32, 16
    manual, _ = steps.torch_manual_loss("discrete", batch, hidden)
    _, model, guide, x, y = steps._torch_setup("discrete", batch, hidden)
    pyro.clear_param_store()
    library = InfoVAE_ELBO(**steps.objective("discrete", batch)).differentiable_loss(model, guide, x, y, num_data=100 * batch)
    assert manual().item() == pytest.approx(library.item(), rel=1e-5)

    key = jax.random.PRNGKey(0)
    jax_manual, params = steps.jax_manual_loss("discrete", batch, hidden)
    numpyro_library, numpyro_params = steps.numpyro_loss("discrete", batch, hidden)
    assert float(jax_manual(params, key)) == pytest.approx(float(numpyro_library(numpyro_params, key)), rel=1e-5)
    assert float(jax_manual(params, key)) == pytest.approx(library.item(), rel=1e-4)


def _readme_notebook_code():
    """The Python block of the README's notebook section."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## In a notebook") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```\n", start)]


@pytest.mark.slow
def test_the_readme_notebook_section_runs_as_written(tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(_readme_notebook_code(), "README.md", "exec"), namespace)
    run, sweep, paths = namespace["run"], namespace["sweep"], namespace["paths"]
    assert run.summary["steps"] == 300 and 0 <= run.summary["probe_accuracy"] <= 1
    assert len(run.metrics) == 3 and {"step", "loss", "probe_accuracy"} <= set(run.metrics.columns)
    assert len(sweep.results) == 4 and (sweep.results["status"] == "ok").all()
    assert paths["report"].exists() and paths["figures"] and paths["inference"].exists()
