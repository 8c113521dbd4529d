"""Fault injection: bad input, hostile files, two writers, Ctrl-C and kill -9, tried as a hostile but fair
user would try them. Each case states what the library promises:

- bad input is exactly one line on stderr, ``infovae: error: ...``, with exit code 2 and no traceback;
  it leaves no partial folder behind and never changes an existing run or sweep folder;
- nothing the library reads (checkpoints, splits, data, config and sweep files) can run code;
- one writer per run or sweep folder; a second is refused on one line and the first loses nothing;
- Ctrl-C stops a sweep within seconds with its results written and nothing lost, and a rerun resumes.

The bad-input matrix: :mod:`~tests.faults.matrix` (the machinery), its cases by concern in
``cases_cli`` (config and data files, overrides, sizes, the output folder), ``cases_sweeps`` (sweep files
and folders) and ``cases_checkpoints`` (checkpoints that could run code, damaged run folders), run by
``test_bad_input``. Other faults: ``test_files`` (files the library reads and writes), ``test_sweep_trials``
(a sweep's bookkeeping of its trials) and ``test_processes`` (races, signals, kill -9; slow).

How to add a case
-----------------
**Bad input on the command line** (the common case): write a function that builds the input inside the
case's own :class:`Workspace` ``w`` and returns the command line after ``infovae``; register it with
:func:`~tests.faults.matrix.bad_input` in the ``cases_*`` module of its concern, giving the fragment the
one-line message must contain::

    @bad_input("config-is-a-list", "a config must be a mapping")
    def _(w):
        return ["train", w.text("c.yaml", "[1, 2]\\n"), "--out", w.out]

The table test then checks every promise above: ``w.out`` (and ``runs/`` in the case's folder) must
not exist afterwards, every folder made with :meth:`Workspace.run`, :meth:`Workspace.sweep_dir` or
passed to :meth:`Workspace.watch` must be unchanged file for file (``.lock`` aside), and
:attr:`Workspace.marker` (what :meth:`Workspace.evil_pickle` writes when unpickled) must not exist.
Where the library does not keep its promise yet, in code this module does not own, register the case
with ``xfail="file: function: what happens instead"``: the test is then a strict xfail, which reports
an unexpected pass as a failure once the code is fixed, the signal to delete the ``xfail``.

Each case runs twice: ``forked`` (the default run) runs it through the command line's entry point
(``infovae.cli.main``, what ``python -m infovae`` calls) in a process of its own, forked from one that
imported the library once, all cases at once, so that the whole table costs about one start of the
library; ``python-m`` (marked slow) runs every fourth case as ``[sys.executable, "-m", "infovae", ...]``,
exactly as a user would (every case with ``INFOVAE_FAULT_ALL=1``).

**Anything else** (a race, a signal, a damaged file read by the library) is a plain test in the module of
its concern; mark it ``@pytest.mark.slow`` if it takes more than about five seconds. Numerics belong
with the objectives (``tests/objectives``, ``tests/numpyro``), not here.
"""
