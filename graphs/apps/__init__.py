"""The applications on top of the agents: the full ``persona-agents`` command (``cli``), the
interactive chat (``chat``), the demo (``demo``) and the one-message safety commands (``checks``).

They sit above both the engine (``persona_agents``) and the domain packs (``domains``), which
never import them.
"""
