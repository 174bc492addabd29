"""mixture_prior: see mixture_prior.py."""
