"""What happened to the latent, as numbers: the quantities a run records
(:mod:`~infovae.diagnostics.quantities`), their NumPy and JAX computations
(:mod:`~infovae.diagnostics.metrics`, :mod:`~infovae.diagnostics.jax_metrics`) and one evaluation
on the host (:mod:`~infovae.diagnostics.evaluate`)."""
