"""Every number a run records, named once: what it means, which way is better, and where it goes.

``metrics.jsonl`` (one line per evaluation on the validation split) uses these names, with the
training terms' running means as ``train_<term>``. ``summary.json`` (the test split) uses them too,
except that the objective's own terms carry a ``test_`` prefix (``test_loss``, ``test_recon``,
``test_kl``, ``test_marginal``, ``test_jsd``): they are the quantities training optimises, measured
on held-out data. Runs written by infovae 0.1 are read with their old names mapped to these
(:data:`OLD_NAMES`).
"""

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "OBJECTIVE_TERMS",
    "OLD_NAMES",
    "QUANTITIES",
    "SUMMARY_KEYS",
    "Quantity",
    "monitorable",
    "summary_name",
    "upgrade_record",
]


@dataclass(frozen=True)
class Quantity:
    """One recorded number: ``better`` says which way is good (``None``: neither), ``term`` whether it
    is a term of the objective."""

    name: str
    description: str
    better: Literal["lower", "higher"] | None
    term: bool = False


QUANTITIES = {
    q.name: q
    for q in (
        Quantity("loss", "the loss per example, -(recon - beta kl - gamma marginal + delta jsd)", "lower", True),
        Quantity("recon", "reconstruction E_q log p(y|x,z) per example [nats]", "higher", True),
        Quantity("kl", "KL(q(z|x,y) || p(z|x)) per example [nats]", "lower", True),
        Quantity(
            "marginal",
            "the objective's marginal divergence D(q(z) || p(z)); absent where it is marginal_kl itself (marginal: kl)",
            "lower",
            True,
        ),
        Quantity("jsd", "mean inter-latent Jensen-Shannon divergence of the decoder [nats]", "higher", True),
        Quantity(
            "mi",
            "I(example; z) under q over the n evaluation examples (ELBO surgery): information the latent carries, "
            "at most log n [nats]",
            "higher",
        ),
        Quantity(
            "marginal_kl",
            "KL(mean_i q(z|x_i,y_i) || mean_i p(z|x_i)) between the n-component mixtures over the evaluation examples "
            "(ELBO surgery) [nats]: grows as posteriors narrow even where the population's q(z) matches p(z); "
            "marginal_mmd measures that",
            "lower",
        ),
        Quantity(
            "marginal_mmd",
            "squared MMD between one draw of q(z|x,y) per example of one half of the evaluation examples and one of "
            "p(z|x) per example of the other half: the population's aggregate posterior against its prior (Gaussian "
            "kernel of width the draws' spread, or the latent's value counts); unbiased, 0 on average where they "
            "match, so small negative values are noise",
            "lower",
        ),
        Quantity(
            "marginal_mmd_p",
            "permutation p-value of marginal_mmd (200 relabellings): uniform where q(z) = p(z), small where they differ",
            None,
        ),
        Quantity("nll", "-log p(y|x): exact (discrete latent) or importance-weighted (Gaussian) [nats]", "lower"),
        Quantity("latent_perplexity", "exp H(q(z)): latent values in use (discrete latent)", None),
        Quantity("active_units", "latent dimensions whose posterior mean varies, variance > 0.01 (Gaussian latent)", None),
        Quantity("probe_accuracy", "accuracy of a label probe on latents sampled from q (labelled data)", "higher"),
        Quantity(
            "probe_x_accuracy",
            "accuracy of a label probe on the condition x alone (labelled data, x of at most 64 features): the "
            "baseline of probe_xz_accuracy",
            None,
        ),
        Quantity(
            "probe_xz_accuracy",
            "accuracy of a label probe on x and a latent sampled from q side by side: less probe_x_accuracy, the "
            "label information z carries beyond x (slightly below 0 on average where z is independent of the label given "
            "x: the probe fits z's weights to noise; a small negative difference is no harm done by z)",
            "higher",
        ),
        Quantity(
            "recon_z_gain",
            "reconstruction log p(y|x,z) with z drawn from q(z|x,y) less that with z drawn from the prior p(z|x), "
            "per example [nats]: how much the decoder uses z (0 where it ignores z)",
            None,
        ),
        Quantity("bayes_accuracy", "the Bayes-optimal label accuracy: the probe's ceiling (known generator)", None),
        Quantity(
            "nmi",
            "normalised mutual information between latent code and label, not corrected for chance: above 0 even for "
            "codes that carry nothing, the more so with many codes and few examples (ami is corrected)",
            "higher",
        ),
        Quantity(
            "ami",
            "adjusted mutual information between latent code and label: NMI corrected for chance, about 0 for codes "
            "that carry nothing about the label, 1 for a one-to-one match",
            "higher",
        ),
        Quantity("coverage_tv", "total variation between the true label mix and that of data generated from the prior", "lower"),
    )
}
OBJECTIVE_TERMS = tuple(name for name, q in QUANTITIES.items() if q.term)


def summary_name(name: str) -> str:
    """The name of quantity ``name`` in ``summary.json``."""
    return f"test_{name}" if name in OBJECTIVE_TERMS else name


SUMMARY_KEYS = tuple(summary_name(name) for name in QUANTITIES)

# Names of infovae 0.1, as they map to today's: both files had mean_kl (= mi + marginal_kl, now
# derived), and summary.json had jsd without test_.
OLD_NAMES = {"summary": {"jsd": "test_jsd", "mean_kl": None}, "metrics": {"mean_kl": None}}


def upgrade_record(record: dict, kind: Literal["summary", "metrics"]) -> dict:
    """A ``summary.json`` or ``metrics.jsonl`` record with old names mapped to today's (dropped where
    the quantity is now derived)."""
    renames = OLD_NAMES[kind]
    out = {}
    for key, value in record.items():
        new = renames.get(key, key)
        if new is not None and new not in out:
            out[new] = value
    return out


def monitorable() -> tuple[str, ...]:
    """The quantities ``train.monitor`` may watch: those with a direction."""
    return tuple(name for name, q in QUANTITIES.items() if q.better is not None)
