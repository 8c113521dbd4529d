"""The regime study's statistics against independent computations, and its write-up and README block
rebuilt from the committed results, byte for byte (``run.py --from-results``)."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "examples" / "regime_study"
RESULTS = ROOT / "docs" / "regime_study" / "results"
sys.path.insert(0, str(STUDY))

import run  # noqa: E402
import study  # noqa: E402


def test_paired_difference_is_the_paired_t_test():
    rng = np.random.default_rng(0)
    a = {seed: v for seed, v in zip(range(5), rng.normal(0.5, 0.1, 5))}
    b = {seed: a[seed] - 0.03 + rng.normal(0, 0.01) for seed in range(5)}
    b[99] = 1.0  # a seed only one side has is not paired
    d = study.paired(a, b, margin=0.05)
    reference = stats.ttest_rel([a[s] for s in range(5)], [b[s] for s in range(5)])
    assert d.n == 5 and d.p == pytest.approx(reference.pvalue, rel=1e-10)
    low, high = d.interval(0.95)
    ci = reference.confidence_interval(0.95)
    assert (low, high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    # Equivalence: the two one-sided tests' p-value is below 0.05 exactly when the 90% interval is inside ±margin.
    low90, high90 = d.interval(0.90)
    for margin in (0.01, 0.03, 0.05, 0.2):
        inside = -margin < low90 and high90 < margin
        assert (study.paired(a, b, margin).p_equivalence < 0.05) == inside


def test_a_bias_allowance_widens_the_intervals_and_tests_beyond_it():
    rng = np.random.default_rng(3)
    a = {seed: 0.10 + 0.01 * rng.standard_normal() for seed in range(8)}
    b = {seed: 0.05 + 0.01 * rng.standard_normal() for seed in range(8)}
    plain, allowed = study.paired(a, b, margin=0.1), study.paired(a, b, margin=0.1, bias=0.03)
    for level in (0.95, 0.90):
        assert np.allclose(allowed.interval(level), np.add(plain.interval(level), (-0.03, 0.03)), rtol=0, atol=1e-15)
    assert allowed.p == pytest.approx(2 * stats.t.sf((plain.mean - 0.03) / plain.se, 7), rel=1e-12)
    assert allowed.p > plain.p and study.paired(a, b, margin=0.1, bias=0.06).p == 1.0  # the mean is within 0.06
    outcomes = set()
    for bias in (0.0, 0.01, 0.02, 0.03, 0.04, 0.08):
        d = study.paired(a, b, 0.1, bias)
        # No difference is rejected exactly when the widened 95% interval leaves out 0; equivalence shown
        # exactly when the widened 90% interval is inside the margin.
        low, high = d.interval(0.95)
        low90, high90 = d.interval(0.90)
        assert (d.p < 0.05) == (low > 0 or high < 0)
        assert (d.p_equivalence < 0.05) == (-0.1 < low90 and high90 < 0.1)
        outcomes.add((d.p < 0.05, d.p_equivalence < 0.05))
    assert len(outcomes) >= 2  # the allowances above reach both sides of both tests' thresholds
    assert study.paired(a, b, margin=0.02, bias=0.03).p_equivalence == 1.0  # nothing is within a negative margin


def test_holm_adjusts_step_down_and_keeps_order():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running maximum 0.02, 0.03, 0.06, 0.06.
    np.testing.assert_allclose(study.holm(p), [0.03, 0.06, 0.06, 0.02, np.nan])


def test_an_outcome_needs_holm_for_a_difference_and_equivalence_for_a_no():
    same = study.Comparison("X", "x", "m", "u", study.paired({0: 0.0, 1: 0.001, 2: -0.001, 3: 0.0005}, None, 0.02))
    apart = study.Comparison("Y", "y", "m", "u", study.paired({0: 0.3, 1: 0.31, 2: 0.29, 3: 0.305}, None, 0.02))
    noisy = study.Comparison("Z", "z", "m", "u", study.paired({0: 0.3, 1: -0.2, 2: 0.1, 3: 0.0}, None, 0.02))
    study.correct([same, apart, noisy])
    assert (same.outcome, apart.outcome, noisy.outcome) == ("equivalent", "higher", "not resolved")


def test_the_fall_between_fixed_windows_is_unbiased_on_flat_curves_and_finds_a_planted_fall():
    steps = np.arange(50, 1501, 50, dtype=float)
    rng = np.random.default_rng(1)
    # Flat curves, noise sd 0.05, independent and AR(1) (coefficient 0.8): the fall is 0 on average (the
    # 4000 curves' mean within 4 standard errors), where the best evaluation less the last is not.
    for phi in (0.0, 0.8):
        noise = np.zeros((4000, len(steps)))
        noise[:, 0] = rng.normal(0, 0.05, 4000)
        for t in range(1, len(steps)):
            noise[:, t] = phi * noise[:, t - 1] + np.sqrt(1 - phi**2) * rng.normal(0, 0.05, 4000)
        falls = np.array([study.window_fall(steps, 0.5 + row) for row in noise])
        assert abs(falls.mean()) < 4 * falls.std() / np.sqrt(len(falls))
        assert (noise.max(axis=1) - noise[:, -1]).mean() > 0.05
    # Exactly the difference of the windows' means: a fall of 0.2, a rise (negative), a window without evaluations.
    curve = np.where(steps <= 300, 0.7, 0.5)
    assert study.window_fall(steps, curve) == pytest.approx(0.2)
    assert study.window_fall(steps, 1 - curve) == pytest.approx(-0.2)
    assert np.isnan(study.window_fall(steps[steps > 400], curve[steps > 400]))


def test_each_arm_reads_its_fall_over_its_own_windows():
    # A probe that falls from 0.6 to 0.45 by step 60 of 600 and stays there: the follow-up's windows (the first
    # 10% against after 50%) see the whole fall; the confirmatory arms' (after 5% and up to 20% against after
    # 75%) see only what is left of it in their early window.
    steps = np.arange(20, 601, 20, dtype=float)
    probe = np.where(steps <= 60, 0.6, 0.45)
    assert study.window_fall(steps, probe, study.WINDOWS["mechanism"]) == pytest.approx(0.15)
    assert study.window_means(steps, probe, study.WINDOWS["fall_count"]) == pytest.approx((0.6, 0.45))
    assert study.window_fall(steps, probe) == pytest.approx(np.mean(probe[(steps > 30) & (steps <= 120)]) - 0.45)


@pytest.mark.parametrize(
    "kl, free, beta, expected",
    [
        ("equivalent", "higher", "higher", "**Not KL erosion**"),
        ("higher", "equivalent", "lower", "**KL erosion**"),
        ("higher", "higher", "lower", "**Both**"),
        ("equivalent", "equivalent", "equivalent", "**No decay to explain**"),
        ("equivalent", "not resolved", "not resolved", "**Not resolved**"),
    ],
)
def test_the_mechanism_answer_is_read_from_the_outcomes_by_its_rule(kl, free, beta, expected):
    keys = run.MECHANISM_KEYS["mechanism"]
    outcomes = {keys["1"]: kl, keys["2"]: free, keys["3"]: beta} | {keys[n]: "not resolved" for n in "456"}
    assert run.mechanism_answer(outcomes, keys).startswith(expected)


def test_counts_of_seeds_are_the_exact_mcnemar_and_binomial_tests():
    # Seeds 0-19 fell in a; 10-19 and 39 in b: 10 fell only in a, 1 only in b (seed 99 is only a's: not paired).
    a = {seed: seed < 20 for seed in range(40)} | {99: True}
    b = {seed: 10 <= seed < 20 or seed == 39 for seed in range(40)}
    mcnemar = study.Count("G", "a against b", a, b)
    assert mcnemar.discordant == (10, 1)
    assert mcnemar.p == pytest.approx(2 * (1 + 11) / 2**11, rel=1e-12)
    assert study.Count("G", "b against a", b, a).p == pytest.approx(mcnemar.p, rel=1e-12)
    assert study.Count("G", "a against itself", a, a).p == 1.0
    # The share of seeds that fell, below 0.2: 2 of 40 fell, P(X <= 2) under Binomial(40, 0.2).
    rare = study.Count("R", "b's share below 0.2", {seed: seed < 2 for seed in range(40)}, rate=0.2)
    assert rare.p == pytest.approx(sum(math.comb(40, i) * 0.2**i * 0.8 ** (40 - i) for i in range(3)), rel=1e-10)
    # Holm among the counts: 0.0080 * 3 and 0.0117 * 2 resolve; a McNemar test of 6 against 2 (p = 0.29) does not.
    weak = study.Count("W", "weak", {s: s < 6 for s in range(10)}, {s: s in (6, 7) for s in range(10)})
    reverse = study.Count("V", "b against a", b, a)
    study.correct_counts([reverse, rare, weak])
    assert (reverse.outcome, rare.outcome, weak.outcome) == ("lower", "below", "not resolved")
    assert study.fell({0: 0.15, 1: 0.05, 2: float("nan")}, 0.1) == {0: True, 1: False}


LOWER = study.paired({seed: -0.3 + 0.01 * seed for seed in range(5)}, None, 0.02)  # resolved below 0
LEVEL = study.paired({seed: 0.01 * (seed - 2) for seed in range(5)}, None, 0.02)  # not resolved


@pytest.mark.parametrize(
    "g1, g2, start, expected, rare",
    [
        ("higher", "below", LEVEL, "**Not KL erosion**: the probe fell in more seeds at β = 0", True),
        ("higher", "not resolved", LEVEL, "**Not KL erosion**", False),
        ("lower", "below", LEVEL, "**KL erosion**", False),
        ("not resolved", "below", LEVEL, "**Not resolved**", True),
    ],
)
def test_the_fall_count_answers_by_its_rule(g1, g2, start, expected, rare):
    answer = run.fall_count_answer({"G1": g1, "G2": g2}, start)
    assert answer.startswith(expected)
    assert ("standard VAE's probe fell in fewer than 20% of its seeds" in answer) == rare
    assert "started lower" not in answer


def test_the_fall_count_says_where_the_standard_vae_started():
    answer = run.fall_count_answer({"G1": "higher", "G2": "below"}, LOWER)
    assert answer.startswith("**Not KL erosion**") and "the standard VAE's probe started lower" in answer
    repurposed = run.fall_count_answer({"G1": "higher", "G2": "below"}, LEVEL, ["z carries more information (`mi`)"])
    assert repurposed.endswith("at β = 0, z carries more information (`mi`) (the follow-up): z is repurposed")
    assert "repurposed" not in run.fall_count_answer({"G1": "not resolved", "G2": "below"}, LEVEL, ["the decoder uses z more"])


@pytest.mark.parametrize(
    "g3, start, end, expected, said",
    [
        ("higher", LEVEL, LEVEL, "**Yes, by the rule committed before the run**", None),
        ("higher", LOWER, LOWER, "**Yes", "started lower (-0.280 [-0.300, -0.260]) and ended lower"),
        ("not resolved", LEVEL, LOWER, "**Not resolved**", "the probe ended lower"),
        ("lower", LEVEL, LEVEL, "**No: the opposite**", None),
    ],
)
def test_the_fall_count_answers_a_by_its_rule_and_says_where_the_probes_started_and_ended(g3, start, end, expected, said):
    answer = run.fall_count_a_answer({"G3": g3}, start, end)
    assert answer.startswith(expected)
    assert ("added after the run" in answer) == (said is not None)
    if said:
        assert said in answer
    # "kept less throughout" only where gamma = 10 stopped the fall and started and ended lower.
    assert ("kept less of the strategy in z throughout" in answer) == (g3 == "higher" and start is LOWER and end is LOWER)


@pytest.mark.skipif(not (RESULTS / study.TRIALS).exists(), reason="no committed study results")
def test_the_write_up_and_readme_block_are_rebuilt_from_the_committed_results():
    results = study.Results.read(RESULTS)
    f = run.family(results)
    assert run.doc_text(results, f, "regime_study") == (ROOT / "docs" / "regime_study.md").read_text()
    readme = (ROOT / "README.md").read_text()
    block = run.readme_block(results, f)
    assert block in readme and readme.count(run.README_BEGIN) == 1


class _Decays:
    """Results whose only numbers are each setting's late-part decays over ten seeds: ``mean`` plus a
    fixed spread of standard deviation ``sd``, so that each setting's t-test has the p-value chosen."""

    def __init__(self, means, sd=0.01):
        z = np.random.default_rng(0).standard_normal(10)
        self.spread, self.means = sd * (z - z.mean()) / z.std(ddof=1), means

    def values(self, arm, setting, metric):
        assert metric == "decay"
        mean = self.means.get((arm, run.label(setting)), 0.0)
        return dict(enumerate(mean + self.spread))


def test_still_moving_is_holm_corrected_across_every_setting_tested():
    tested = sum(len(run.settings_of(arm)) for arm in run.ARMS)
    se = 0.01 / math.sqrt(10)
    # One setting clearly rising; one whose t-test alone gives p = 0.01, which Holm's factor of about
    # the number of settings tested takes above 0.05.
    clear, borderline = ("control", run.label(run.STANDARD)), ("discrete", run.label(run.EARLIER))
    means = {clear: -10 * se, borderline: stats.t.isf(0.005, 9) * se}
    text = run.convergence(_Decays(means))
    assert study.paired(_Decays(means).values("discrete", run.EARLIER, "decay"), None, 0.02).p == pytest.approx(0.01)
    lines = {line.split(":")[0].removeprefix("- "): line for line in text.splitlines()}
    assert f"still moving: {clear[1]} (rising by" in lines["control"] and "Holm p = " in lines["control"]
    assert "still moving" not in lines["discrete"] and lines["discrete"].startswith("- discrete: 6 of 6 settings")
    assert sum(int(line.split(" of ")[0].rsplit(" ", 1)[-1]) for line in lines.values()) == tested - 1
