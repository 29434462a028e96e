"""evals.ei: the PersonaFuse paper's claim, measured on items written for this project.

Social-emotional intelligence (emotional understanding, emotional application, emotion
intensity), general ability and safety refusals, each a multiple-choice set scored by the
model's log-likelihood of every option. Three systems: the base model, a prompt-only persona
(base model, routed poles described in the system prompt) and routed PersonaFuse (the router's
expert mixture). ``python -m evals.ei --help``; the items and how they were written:
``evals/data/ei/README.md``.

Modules: ``items`` (reading and validating item files), ``scoring`` (option log-likelihoods),
``systems`` (the three systems from the engine's parts), ``run`` (scoring every item, the whole
evaluation), ``stats`` and ``summary`` (accuracies, paired differences), ``report`` (table,
markdown, plot). Nothing heavy is imported here, so ``python -m evals.ei`` refuses bad item
files before torch loads.
"""
