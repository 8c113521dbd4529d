"""The regime study: which weights of the InfoVAE objective keep the hidden factor in the latent?

    python examples/regime_study/run.py                  # default size, about half an hour on two cores
    python examples/regime_study/run.py --full           # the large grid
    python examples/regime_study/run.py --executor ray   # on Ray (add --address for a cluster)

Runs the sweeps on `strategies` and `digits` into runs/regime_study/, writes each sweep's report
(results.md, report.md and figures) and prints the tables. Re-running resumes: finished trials are
skipped. With --figures DIR the report figures are also copied there (the README's come from
`--figures docs/regime_study`).
"""

import argparse
import shutil
from pathlib import Path

from infovae.diagnostics.report import write_sweep_report

from infovae.sweeps import run_sweep

HERE = Path(__file__).resolve().parent


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the large grid (hundreds of runs: use Ray on a cluster)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--address", help="Ray cluster address")
    parser.add_argument("--workers", type=int, help="local worker processes (default: the cores)")
    parser.add_argument("--out", type=Path, default=Path("runs/regime_study"))
    parser.add_argument("--figures", type=Path, help="also copy the report figures here")
    args = parser.parse_args()
    suffix = "_full" if args.full else ""
    for data in ("strategies", "digits"):
        out = args.out / f"{data}{suffix}"
        result = run_sweep(HERE / f"{data}{suffix}.yaml", out, executor=args.executor, workers=args.workers, address=args.address)
        report = write_sweep_report(out)
        print(f"\n## {data}\n\n{result.table}\n\nreport: {report}")
        if args.figures:
            target = args.figures / f"{data}{suffix}"
            target.mkdir(parents=True, exist_ok=True)
            for png in (out / "report").glob("*.png"):
                shutil.copy(png, target / png.name)
            shutil.copy(out / "results.md", target / "results.md")


if __name__ == "__main__":
    main()
