"""The wizard's steps: the engine's one list (`migrations_engine.steps`), as the pages use it."""

from migrations_engine.steps import STEP_BY_NAME, STEPS, Step, furthest_step, step_allowed

__all__ = ["STEPS", "STEP_BY_NAME", "Step", "furthest_step", "step_allowed"]
