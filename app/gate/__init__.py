"""The gate layer: the one road every decision takes (pipeline.py), what may change a decision after
the engine (overlays.py), the questions origins ask (question.py, workloads.py) and the collaborators
built once per process (core.py)."""
