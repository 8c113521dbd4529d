"""The NumPyro backend: the flax twins of the CVAE and the NumPyro :class:`InfoVAE_ELBO`, optimised with
Adam, for a group of trials as one compiled program.

The trials of a group share every shape; :func:`jax.vmap` maps the program over the trial axis of the
network weights, the optimiser states, the random keys, the minibatch indices (each trial's own data
order) and the per-trial scalars (:class:`~infovae.training.backends.Hyper`: the objective's weights,
the learning rate, warm-up lengths, the gradient clip), so that one compilation serves the whole
group. Steps run in chunks inside :func:`jax.lax.scan`, Python out of the hot path. Every diagnostic
of an evaluation is computed on the device too (:mod:`infovae.diagnostics.jax_metrics`), in blocks of
trials (:data:`EVAL_BLOCK`) to bound memory, so that the host receives O(trials) numbers.

A run starts from the same weights as the Pyro backend with the same seed (drawn with NumPy in torch's
layout, :mod:`infovae.core.initial_weights`, and transposed into the flax trees), so that the two
backends can be compared run for run; a trial in a group gets the same numbers as the same trial
alone, up to float32 rounding of the batched arithmetic.
"""

import importlib
import importlib.util
import math
import os
from functools import cached_property, partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from infovae.core.initial_weights import cvae_initial_weights
from infovae.core.latents import CategoricalLatent, GaussianLatent
from infovae.core.marginals import MARGINALS
from infovae.core.objective import assemble_loss
from infovae.diagnostics import jax_metrics, metrics
from infovae.diagnostics.evaluate import held_out_set, reports_marginal
from infovae.errors import CheckpointError, UserInputError, first_line
from infovae.machine import jax_device
from infovae.numpyro.weights import state_dicts_to_numpyro
from infovae.training.backends import Backend, Hyper, learning_rate, scheduled_weights
from infovae.training.stored_programs import StoredProgram, code_digest

__all__ = ["CACHE_ENV", "EVAL_BLOCK", "NumPyroBackend", "use_compilation_cache"]


def _require(*names):
    """The libraries that the model, the guide and the ELBO import when first used (below), looked for
    now, without importing them: a missing one is named when the backend is loaded (the registry's
    one-line error with the extra to install), not at a run's first step, after its folder was made."""
    for name in names:
        if importlib.util.find_spec(name) is None:
            raise ImportError(f"No module named {name!r}", name=name)


_require("numpyro", "flax")


def _traced_part(module, name):
    """``name`` from ``module``, which imports NumPyro and flax: imported when a program is first traced.
    _require found both libraries; one that is there but fails to import (a broken install, another
    library's incompatible version) is named here in one line, not in a traceback."""
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as error:
        raise UserInputError(
            f"the numpyro backend's libraries fail to import ({first_line(error)}): "
            "pip install --force-reinstall 'infovae[numpyro]'"
        ) from None


# Trials evaluated together: an evaluation holds, per trial, the decoder at every latent value (or
# importance draw) for every held-out example.
EVAL_BLOCK = 16
# Where compiled programs are kept between processes (a folder, or "off"); default: the user's cache.
CACHE_ENV = "INFOVAE_JAX_CACHE"


def use_compilation_cache():
    """Keep XLA's compiled programs on disk, so that a run or sweep trial whose shapes were compiled
    before (by any process on this machine) starts in seconds rather than after a fresh compilation.
    A cache folder the user set for JAX is kept. Returns the folder for traced programs
    (:mod:`~infovae.training.stored_programs`), inside the compilation cache's; None when it is off."""
    if not jax.config.jax_compilation_cache_dir:
        folder = os.environ.get(CACHE_ENV) or str(
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "infovae" / "jax"
        )
        if folder.lower() == "off":
            return None
        jax.config.update("jax_compilation_cache_dir", folder)
        # Every program, however quickly it compiles: when a run compiled about 60, most of them small
        # host-side operations, caching them all took a warm 100-step run on digits from 26 to 20 CPU seconds.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return Path(jax.config.jax_compilation_cache_dir) / "programs"


def _on_device(array, dtype=None):
    """``array`` (anything :func:`numpy.asarray` takes) as a JAX array on the default device, as
    ``jnp.asarray`` gives it, without the small program per shape (``stage``, ``convert_element_type``)
    that ``jnp.asarray`` traces and compiles, or reads from the cache, in every run: NumPy converts and
    copies, and :func:`jax.device_put` moves the copy (on a CPU it may share a NumPy array's memory, even
    with ``may_alias=False``, and would then see the caller's later changes to it)."""
    return jax.device_put(np.array(array, dtype=dtype))


def _stack(trees):
    """The trees' leaves (NumPy arrays) stacked along a new first axis, on the host, to be put on the
    device once, where ``jnp.stack`` would run one small program per leaf shape, each traced and
    compiled (or read from the cache) in every run."""
    return jax.tree.map(lambda *leaves: np.stack(leaves), *trees)


def _num_classes(fit, held):
    """The probes' number of classes (static in the programs): every label either subset holds, and at least two."""
    return max(held.num_labels, fit.num_labels, 2)


def _where(mask, new, old):
    """Per trial (or per step within a trial): ``new`` where ``mask``, else ``old``."""
    return jax.tree.map(lambda a, b: jnp.where(jnp.reshape(mask, mask.shape + (1,) * (a.ndim - mask.ndim)), a, b), new, old)


class NumPyroBackend(Backend):
    name = "numpyro"
    # Steps per compiled chunk (a chunk never crosses an evaluation).
    chunk_size = 100
    max_trials = 1 << 20

    def __init__(self, configs, arch, train_data):
        super().__init__(configs, arch, train_data)
        programs = use_compilation_cache()
        first = self.configs[0]
        self.steps = first.train.steps
        self.train_x, self.train_y = self._x(train_data.x), self._y(train_data.y)
        self._hyper = Hyper(*(_on_device(values, np.float32) for values in self.hyper))
        closure = self._closure()
        self._train = StoredProgram(self._train_impl, "train", closure, programs)
        self._evaluate = StoredProgram(
            self._evaluate_impl, "evaluate", closure, programs, static_argnames=("num_labels", "num_clusters")
        )
        # Programs that read nothing but their arguments: stored too, so that a warm run traces none of them.
        self._adam_init = StoredProgram(jax.vmap(optax.scale_by_adam().init), "adam_init", "", programs)
        self._where = StoredProgram(_where, "where", "", programs)
        self._relabellings = StoredProgram(
            jax_metrics.relabellings, "relabellings", "", programs, static_argnames=("num_first", "num_second")
        )
        self._context_probe = StoredProgram(
            jax_metrics.probe_accuracy, "context_probe", "", programs, static_argnames=("num_classes",)
        )
        initial = {}
        for config in self.configs:
            if config.train.seed not in initial:
                initial[config.train.seed] = state_dicts_to_numpyro(
                    *cvae_initial_weights(arch, config.train.seed), dtype=np.float32, on_device=False
                )
        params = jax.device_put(_stack([initial[c.train.seed] for c in self.configs]), jax_device())
        self._set_state(
            params,
            params,
            self._adam_init(params),
            _stack([jax.random.PRNGKey(c.train.seed) for c in self.configs]),
            np.zeros(self.num_trials, np.int32),
        )

    # The model, the guide and the ELBO are made when first used: tracing a program, or a report's call.
    # A run whose programs were all stored before (stored_programs) uses none of them, and so imports
    # neither NumPyro nor flax: half a second of a warm 100-step run on two cores (docs/performance.md).

    @cached_property
    def model(self):
        return _traced_part("infovae.numpyro.models", "CVAEModel")(self.arch)

    @cached_property
    def guide(self):
        return _traced_part("infovae.numpyro.guides", "CVAEGuide")(self.arch)

    @cached_property
    def elbo(self):
        elbo_class = _traced_part("infovae.numpyro.objectives", "InfoVAE_ELBO")
        # The group's trials share the marginal's kind; the ELBO computes every term some trial weighs,
        # and each trial's own weights enter as values (self.hyper).
        weighs = lambda name: float(any(getattr(c.objective, name) > 0 for c in self.configs))  # noqa: E731
        kwargs = self.configs[0].objective.elbo_kwargs()
        return elbo_class(**{**kwargs, "marginal_weight": weighs("marginal_weight"), "jsd_weight": weighs("jsd_weight")})

    def _closure(self):
        """What the compiled programs read besides their arguments, as text (the key of a stored program):
        the architecture, the training set's size, the group's configs and any plug-in divergence's file;
        None where that cannot be told. The seeds are left out: they enter as arguments (initial weights,
        random keys, evaluation subsets), so trials that differ only in their seeds share programs
        (tests/training/test_stored_programs.py checks it)."""
        configs, plugins = [], set()
        for config in self.configs:
            raw = config.model_dump(mode="json")
            raw["train"].pop("seed")
            raw["data"].pop("seed", None)
            configs.append(raw)
            name = config.objective.marginal
            function = None if name is None else MARGINALS[name].function(self.name)
            if function is not None and not function.__module__.startswith("infovae."):
                # A plug-in divergence is traced into the programs: its file is part of the key, and a
                # divergence without a file (defined in a notebook) keeps them from being stored.
                digest = code_digest(function)
                if digest is None:
                    return None
                plugins.add(digest)
        return repr((self.arch, self.num_data, configs, sorted(plugins)))

    # -- arrays in -------------------------------------------------------------------------------

    def _x(self, x):
        return _on_device(x, np.float32)

    def _y(self, y):
        return _on_device(y, np.int32 if self.arch.likelihood == "categorical" else np.float32)

    def _z(self, z):
        return _on_device(z, np.int32 if self.arch.latent == "discrete" else np.float32)

    # -- training ----------------------------------------------------------------------------------

    def _step(self, carry, index, hyper, data):
        """One step of one trial on the minibatch ``index`` of ``data`` (``(x, y)``, the training set). A
        step whose loss or gradient is not finite changes nothing, and the trial takes no more steps in
        this chunk."""
        params, opt_state, key, t, alive = carry
        key, step_key = jax.random.split(key)
        x, y = data[0][index], data[1][index]
        weights = scheduled_weights(jnp, t, hyper)

        def loss_fn(p):
            terms = self.elbo.differentiable_terms(step_key, p, self.model, self.guide, x, y, num_data=self.num_data)
            return assemble_loss(terms, self.num_data, *weights), terms

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grads)))
        clip = jnp.where(norm > hyper.grad_clip, hyper.grad_clip / norm, 1.0)
        updates, new_opt_state = optax.scale_by_adam().update(jax.tree.map(lambda g: g * clip, grads), opt_state)
        lr = learning_rate(jnp, t, hyper.lr, hyper.cosine, self.steps)
        new_params = optax.apply_updates(params, jax.tree.map(lambda u: u * -lr, updates))
        go = alive & jnp.isfinite(loss) & jnp.isfinite(norm)
        params, opt_state = _where(go, new_params, params), _where(go, new_opt_state, opt_state)
        out = {**terms, "loss": loss / self.num_data, "finite": jnp.isfinite(loss) & jnp.isfinite(norm)}
        return (params, opt_state, key, t + go, go), out

    def _train_impl(self, params, opt_state, keys, step_count, active, indices, hyper, data):
        # The training set is an argument, not a constant of the program: a constant would be copied
        # into the compiled program (and its cache key) and folded at every compilation.
        def trial(p, o, k, t, a, idx, h):
            return jax.lax.scan(partial(self._step, hyper=h, data=data), (p, o, k, t, a), idx)

        (params, opt_state, keys, step_count, _), terms = jax.vmap(trial)(
            params, opt_state, keys, step_count, active, indices, hyper
        )
        return params, opt_state, keys, step_count, terms

    def train_steps(self, indices, active):
        self.params, self.opt_state, self.keys, self.step_count, terms = self._train(
            self.params,
            self.opt_state,
            self.keys,
            self.step_count,
            _on_device(active),
            _on_device(indices, np.int32),
            self._hyper,
            (self.train_x, self.train_y),
        )
        terms = {name: np.asarray(values, dtype=np.float64) for name, values in terms.items()}
        # A step that could not be taken reports its loss as not finite, whichever part failed.
        terms["loss"] = np.where(
            terms.pop("finite") > 0, terms["loss"], np.where(np.isfinite(terms["loss"]), np.nan, terms["loss"])
        )
        return terms

    def keep_best(self, mask):
        self.best = self._where(_on_device(mask), self.params, self.best)

    # -- evaluation --------------------------------------------------------------------------------

    def _eval_set(self, held_out, fit, generator):
        """The arrays an evaluation on ``held_out`` needs, on the device, and the numbers it reads from the
        data alone: :func:`~infovae.diagnostics.evaluate.held_out_set`'s, as the Pyro backend's (made
        once per data set, :meth:`~infovae.training.backends.Backend.once_per_data`)."""
        data = held_out_set(held_out, fit, generator, self.configs[0], context_probe=self._probe_from_x)
        held, fitting = data.held, data.fit
        arrays = {"x": self._x(held.x), "y": self._y(held.y), "fit_x": self._x(fitting.x), "fit_y": self._y(fitting.y)}
        # The two-sample test's relabellings, drawn once for the run: any drawn apart from the latents serve.
        first, second = data.matching_halves
        arrays.update(matching_first=_on_device(first, np.int32), matching_second=_on_device(second, np.int32))
        relabelling_key = jax.random.PRNGKey(self.configs[0].data.seed)
        arrays["relabellings"] = self._relabellings(relabelling_key, num_first=len(first), num_second=len(second))
        extra = {
            "num_labels": None,
            "num_clusters": None,
            "bayes_accuracy": data.bayes_accuracy,
            "probe_x_accuracy": data.probe_x_accuracy,
        }
        if held.labels is not None and fitting.labels is not None:
            arrays.update(labels=_on_device(held.labels, np.int32), fit_labels=_on_device(fitting.labels, np.int32))
            extra["num_labels"] = _num_classes(fitting, held)
            # The k-means clusters count the labels present (ids may be sparse), as the host's latent_codes.
            extra["num_clusters"] = max(metrics.label_count(fitting.labels, held.labels), 2)
        if generator is not None:
            arrays.update(tables=_on_device(data.label_tables, np.float32), mix=_on_device(generator.label_mix, np.float32))
            if data.label_log_prior is not None:  # x informative about the label: p(l | x) replaces the mix
                arrays["log_prior"] = _on_device(data.label_log_prior, np.float32)
        return arrays, extra

    def _probe_from_x(self, fit, held):
        """The device's probe of the label from x alone, as probe_xz_accuracy's from x and z."""
        fit_labels, labels = _on_device(fit.labels, np.int32), _on_device(held.labels, np.int32)
        probe = self._context_probe(self._x(fit.x), fit_labels, self._x(held.x), labels, num_classes=_num_classes(fit, held))
        return float(probe)

    def _evaluate_trial(self, params, key, hyper, data, num_labels, num_clusters):
        """Every quantity for one trial (its weights ``params``), on the device."""
        c = self.configs[0]
        x, y = data["x"], data["y"]
        names = (
            "terms",
            "surgery",
            "nll",
            "probe_fit",
            "probe",
            "codes",
            "generate",
            "posterior_draws",
            "prior_draws",
            "matching",
            "prior_use",
        )
        keys = dict(zip(names, jax.random.split(key, len(names))))
        terms = self.elbo.loss_terms(keys["terms"], params, self.model, self.guide, x, y)
        loss = assemble_loss(terms, x.shape[0], hyper.beta, hyper.marginal_weight, hyper.jsd_weight) / x.shape[0]
        out = {"loss": loss, "recon": terms["recon"], "kl": terms["kl"], "jsd": terms["jsd"]}
        if reports_marginal(c.objective):
            out["marginal"] = terms["marginal"]
        q = self.guide.posterior(params, x, y)
        p = self.model.prior(params, x)
        if self.arch.latent == "discrete":
            q_probs, p_probs = q.probs, p.probs
            surgery = jax_metrics.discrete_elbo_surgery(q_probs, p_probs)
            log_lik = self.model.decoder(params, x, jnp.arange(self.arch.latent_size)[:, None]).log_prob(y)  # [K, n]
            out["nll"] = -jnp.mean(jax.scipy.special.logsumexp(log_lik + jnp.log(p_probs).T, axis=0))
            out["latent_perplexity"] = jax_metrics.latent_perplexity(q_probs)
            out["recon_z_gain"] = jax_metrics.discrete_recon_z_gain(q_probs, p_probs, log_lik)
            draws = (
                jax_metrics.sample_categorical(keys["posterior_draws"], q_probs),
                jax_metrics.sample_categorical(keys["prior_draws"], p_probs),
            )
            num_values = self.arch.latent_size
        else:
            q_loc, q_scale, p_loc, p_scale = q.base_dist.loc, q.base_dist.scale, p.base_dist.loc, p.base_dist.scale
            p_loc, p_scale = jnp.broadcast_to(p_loc, q_loc.shape), jnp.broadcast_to(p_scale, q_loc.shape)
            surgery = jax_metrics.gaussian_elbo_surgery(keys["surgery"], q_loc, q_scale, p_loc, p_scale)
            S = c.train.importance_samples
            z = jax_metrics.sample_gaussian(keys["nll"], q_loc, q_scale, S)  # [S, n, d]
            log_lik = self.model.decoder(params, x, z).log_prob(y)  # [S, n]
            log_w = (
                log_lik
                + jax.scipy.stats.norm.logpdf(z, p_loc, p_scale).sum(-1)
                - jax.scipy.stats.norm.logpdf(z, q_loc, q_scale).sum(-1)
            )
            out["nll"] = -jnp.mean(jax.scipy.special.logsumexp(log_w, axis=0) - math.log(S))
            z_prior = jax_metrics.sample_gaussian(keys["prior_use"], p_loc, p_scale, S)
            out["recon_z_gain"] = jnp.mean(log_lik) - jnp.mean(self.model.decoder(params, x, z_prior).log_prob(y))
            out["active_units"] = jax_metrics.active_units(q_loc)
            draws = (
                jax_metrics.sample_gaussian(keys["posterior_draws"], q_loc, q_scale),
                jax_metrics.sample_gaussian(keys["prior_draws"], p_loc, p_scale),
            )
            num_values = None
        out.update(mi=surgery["mi"], marginal_kl=surgery["marginal_kl"])
        # The posterior's draws of one half of the examples against the prior's of the other (held_out_set).
        posterior_draws, prior_draws = draws[0][data["matching_first"]], draws[1][data["matching_second"]]
        matching = jax_metrics.marginal_fit(
            keys["matching"], posterior_draws, prior_draws, num_values, membership=data["relabellings"]
        )
        out.update(marginal_mmd=matching["statistic"], marginal_mmd_p=matching["p_value"])
        if num_labels is not None:
            q_fit = self.guide.posterior(params, data["fit_x"], data["fit_y"])
            z_fit, z_held = self._features(keys["probe_fit"], q_fit), self._features(keys["probe"], q)
            out["probe_accuracy"] = jax_metrics.probe_accuracy(z_fit, data["fit_labels"], z_held, data["labels"], num_labels)
            if 0 < x.shape[1] <= metrics.CONTEXT_PROBE_FEATURES:
                out["probe_xz_accuracy"] = jax_metrics.probe_accuracy(
                    jnp.concatenate([data["fit_x"], z_fit], axis=1),
                    data["fit_labels"],
                    jnp.concatenate([x, z_held], axis=1),
                    data["labels"],
                    num_labels,
                )
            if self.arch.latent == "discrete":
                codes, num_codes = jnp.argmax(q.probs, -1), self.arch.latent_size
            else:
                codes, num_codes = jax_metrics.kmeans_codes(keys["codes"], q.base_dist.loc, num_clusters), num_clusters
            out["nmi"] = jax_metrics.normalised_mutual_information(data["labels"], codes, num_labels, num_codes)
            out["ami"] = jax_metrics.adjusted_mutual_information(data["labels"], codes, num_labels, num_codes)
        if "tables" in data:
            prior_key, decoder_key = jax.random.split(keys["generate"])
            z = p.sample(prior_key)
            y_generated = self.model.decoder(params, x, z).sample(decoder_key)
            out["coverage_tv"] = jax_metrics.label_posterior_coverage_tv(
                data["tables"], data["mix"], y_generated, data.get("log_prior")
            )
        return out

    def _features(self, key, q):
        """Probe features of one latent draw per example: one-hot values, or the vector."""
        if self.arch.latent == "discrete":
            return jax_metrics.one_hot_features(jax_metrics.sample_categorical(key, q.probs), self.arch.latent_size)
        return jax_metrics.sample_gaussian(key, q.base_dist.loc, q.base_dist.scale)

    def _evaluate_impl(self, params, keys, hyper, data, num_labels, num_clusters):
        def trial(args):
            return self._evaluate_trial(*args, data, num_labels, num_clusters)

        return jax.lax.map(trial, (params, keys, hyper), batch_size=min(EVAL_BLOCK, self.num_trials))

    def evaluate(self, held_out, fit, generator, seeds, selected=False):
        data, extra = self.once_per_data(lambda: self._eval_set(held_out, fit, generator), held_out, fit, generator)
        keys = jax.device_put(_stack([jax.random.PRNGKey(int(s)) for s in seeds]))
        params = self.params if selected is False else self._where(_on_device(selected), self.best, self.params)
        out = self._evaluate(params, keys, self._hyper, data, num_labels=extra["num_labels"], num_clusters=extra["num_clusters"])
        record = {name: np.asarray(values, dtype=np.float64).tolist() for name, values in out.items()}
        if "active_units" in record:
            record["active_units"] = [int(v) for v in record["active_units"]]
        for name in ("latent_perplexity", "active_units", "probe_accuracy", "probe_xz_accuracy", "nmi", "ami", "coverage_tv"):
            record.setdefault(name, [None] * self.num_trials)
        record["bayes_accuracy"] = [extra["bayes_accuracy"]] * self.num_trials
        record["probe_x_accuracy"] = [extra["probe_x_accuracy"]] * self.num_trials
        return record

    # -- state -------------------------------------------------------------------------------------

    def state_dict(self):
        return jax.device_get({
            "params": self.params,
            "best": self.best,
            "opt_state": jax.tree.leaves(self.opt_state),
            "keys": self.keys,
            "step_count": self.step_count,
        })  # fmt: skip

    def _check_weights(self, weights):
        """Weights read from a checkpoint (NumPy arrays) against this run's: the same names, shapes and
        dtypes, checked before they go to the device, which would make float64 float32 without JAX's
        64-bit mode. Weights of another dtype would be trained by another program than this run's."""
        if jax.tree.structure(weights) != jax.tree.structure(self.params):
            raise ValueError("its weights have other names")
        for mine, theirs in zip(jax.tree.leaves(self.params), map(np.asarray, jax.tree.leaves(weights))):
            if mine.shape != theirs.shape:
                raise ValueError(f"a weight of shape {theirs.shape} where this run has {mine.shape}")
            if mine.dtype != theirs.dtype:
                raise ValueError(f"weights of {theirs.dtype} where this run's are {mine.dtype}")

    def load_state_dict(self, state):
        try:
            self._check_weights(state["params"])
            self._check_weights(state["best"])
            params = jax.tree.map(_on_device, state["params"])
            best = jax.tree.map(_on_device, state["best"])
            leaves = [_on_device(a) for a in state["opt_state"]]
            treedef = jax.tree.structure(self.opt_state)
            if [(a.shape, a.dtype) for a in leaves] != [(a.shape, a.dtype) for a in jax.tree.leaves(self.opt_state)]:
                raise ValueError("its optimiser state has other shapes or dtypes")
            keys, step_count = _on_device(state["keys"]), _on_device(state["step_count"], np.int32)
            if keys.shape != self.keys.shape or step_count.shape != self.step_count.shape:
                raise ValueError("it holds another number of trials")
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"the checkpoint does not fit this run's model ({error})") from None
        self._set_state(params, best, jax.tree.unflatten(treedef, leaves), keys, step_count)

    def _set_state(self, params, best, opt_state, keys, step_count):
        # Committed to the device, as the training program's outputs are: JAX compiles a program again
        # for inputs placed otherwise, so uncommitted first inputs cost every run a second compilation
        # (or a second executable read from the cache) of its largest program. The device the data went
        # to (_on_device): the user's choice of default device, where there is one.
        state = jax.device_put((params, best, opt_state, keys, step_count), jax_device())
        self.params, self.best, self.opt_state, self.keys, self.step_count = state

    def trial_state(self, index):
        return jax.tree.map(lambda a: np.asarray(a)[index : index + 1], self.state_dict())

    # -- the selected model of trial 0, for reports ------------------------------------------

    def use_selected(self):
        self.params = self._where(_on_device([c.train.select == "best" for c in self.configs]), self.best, self.params)

    @property
    def _trial_params(self):
        return jax.tree.map(lambda a: a[0], self.params)

    @staticmethod
    def _latent_params(fn):
        base = fn.base_dist if hasattr(fn, "base_dist") else fn
        if hasattr(base, "probs"):
            return CategoricalLatent(np.asarray(base.probs, dtype=np.float64))
        return GaussianLatent(
            np.asarray(base.loc, dtype=np.float64), np.asarray(jnp.broadcast_to(base.scale, base.loc.shape), dtype=np.float64)
        )

    def posterior(self, x, y):
        return self._latent_params(self.guide.posterior(self._trial_params, self._x(x), self._y(y)))

    def prior(self, x):
        return self._latent_params(self.model.prior(self._trial_params, self._x(x)))

    def log_likelihood(self, x, y, z, pointwise=False):
        fn = self.model.decoder(self._trial_params, self._x(x), self._z(z))
        return np.asarray((fn.base_dist if pointwise else fn).log_prob(self._y(y)), dtype=np.float64)

    def decoder_mean(self, x, z):
        fn = self.model.decoder(self._trial_params, self._x(x), self._z(z)).base_dist
        mean = fn.loc if self.arch.likelihood == "gaussian" else fn.probs
        return np.asarray(
            jnp.broadcast_to(mean, fn.batch_shape + fn.event_shape + mean.shape[len(fn.batch_shape) + len(fn.event_shape) :]),
            dtype=np.float64,
        )

    @partial(jax.jit, static_argnums=0)
    def _generate(self, params, key, x, z):
        prior_key, decoder_key = jax.random.split(key)
        if z is None:
            z = self.model.prior(params, x).sample(prior_key)
        return z, self.model.decoder(params, x, z).sample(decoder_key)

    def generate(self, x, seed, z=None):
        z, y = self._generate(self._trial_params, jax.random.PRNGKey(seed), self._x(x), None if z is None else self._z(z))
        return np.asarray(z), np.asarray(y)
