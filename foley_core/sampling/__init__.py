"""Sampling: the flow-matching ODE, classifier-free guidance."""
