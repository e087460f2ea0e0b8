"""Evaluators: what a built model is measured by. Latency and energy on real hardware, zero-cost accuracy
proxies at initialisation, and proxy training on a data set. Every module here imports torch."""
