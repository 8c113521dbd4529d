"""The report's sentences claim what the numbers show and no more."""

from types import SimpleNamespace

from infovae.reports import verdicts


def records(**series):
    n = len(next(iter(series.values())))
    return [{"step": 10 * (i + 1), **{k: v[i] for k, v in series.items()}} for i in range(n)]


def test_still_improving_names_the_evaluation():
    text = verdicts.monitor_verdict(records(loss=[5.0, 4.0, 3.0, 2.5]), "loss")
    assert "Still improving" in text and "step 40" in text and "last evaluation" in text
    text = verdicts.monitor_verdict(records(loss=[5.0, 4.0, 3.0, 3.1]), "loss")
    assert "Still improving" in text and "step 30" in text and "1 before the last" in text
    text = verdicts.monitor_verdict(records(loss=[5.0, 2.0, 3.0, 3.1, 3.2]), "loss")
    assert "Still improving" not in text and "stopped improving" in text and "step 20" in text
    # A quantity where higher is better.
    text = verdicts.monitor_verdict(records(probe_accuracy=[0.3, 0.5, 0.4, 0.35]), "probe_accuracy")
    assert "Still improving" not in text and "step 20" in text


def test_at_chance_uses_the_binomial_noise_of_the_evaluation():
    # 3 labels, 60 examples: chance 1/3, two standard errors 0.122.
    assert "**at chance**" in verdicts.chance_verdict(0.40, 3, 60)
    assert "above chance" in verdicts.chance_verdict(0.50, 3, 60)
    # The same accuracy on many more examples is above chance.
    assert "above chance" in verdicts.chance_verdict(0.40, 3, 2000)
    assert verdicts.chance_verdict(None, 3, 60) is None


def test_probe_decay_is_within_noise_on_few_examples():
    acc = records(probe_accuracy=[0.4, 0.6, 0.45])
    assert "within noise" in verdicts.probe_decay_verdict(acc, num_examples=30)
    assert "**the probe decayed**" in verdicts.probe_decay_verdict(acc, num_examples=5000)
    assert "did **not** decay" in verdicts.probe_decay_verdict(records(probe_accuracy=[0.4, 0.6, 0.58]), 5000)
    assert verdicts.probe_decay_verdict(records(loss=[1.0]), 30) is None


def test_collapse_warning():
    assert "no latent dimension is active" in verdicts.collapse_warning({"mi": 0.5, "active_units": 0}, "gaussian")
    assert "perplexity" in verdicts.collapse_warning({"mi": 0.5, "latent_perplexity": 1.02}, "discrete")
    assert "0.0010 nats" in verdicts.collapse_warning({"mi": 0.001, "latent_perplexity": 3.9}, "discrete")
    assert verdicts.collapse_warning({"mi": 0.5, "latent_perplexity": 3.9}, "discrete") is None


def test_overfitting_warning():
    falling = records(recon=[-5.0, -4.9, -4.95, -5.1], train_recon=[-5.0, -4.8, -4.6, -4.4])
    assert "Overfitting" in verdicts.overfitting_warning(falling)
    both_rising = records(recon=[-5.0, -4.9, -4.8], train_recon=[-5.0, -4.8, -4.6])
    assert verdicts.overfitting_warning(both_rising) is None


def test_selection_and_early_stopping_are_stated():
    train = SimpleNamespace(steps=400, select="best", monitor="loss", early_stopping=SimpleNamespace(patience=3))
    text = verdicts.selection_sentence({"steps": 120, "selected_step": 60, "stopped_early": True}, train)
    assert "Stopped early" in text and "step 120 of 400" in text and "step 60" in text and "best validation `loss`" in text
    train = SimpleNamespace(steps=400, select="last", monitor="loss", early_stopping=None)
    text = verdicts.selection_sentence({"steps": 400, "selected_step": 400, "stopped_early": False}, train)
    assert "all 400 steps" in text and "last weights" in text
