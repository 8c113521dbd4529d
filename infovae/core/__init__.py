"""What does not depend on the backend: the CVAE's shape and distributions, the objective's arguments,
its site checks and terms, and the registry of marginal divergences. No framework imports here."""
