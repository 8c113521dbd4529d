"""Reports for people: a run's or a sweep's figures as PNG files, a ``report.md`` that says what they
show, and a run's ArviZ data (:mod:`infovae.reports.arviz`)."""

from infovae.reports.arviz import compare_heldout, heldout_elpd, read_datatree, run_datatree
from infovae.reports.report import run_figures, sweep_figures, write_report

__all__ = ["compare_heldout", "heldout_elpd", "read_datatree", "run_datatree", "run_figures", "sweep_figures", "write_report"]
