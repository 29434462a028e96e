"""Training the PersonaFuse bundle: corpus, experts, router, evaluation and report."""
