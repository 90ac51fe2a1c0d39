"""Time: the engine clock, due flips released at their instant, kicks, sweeps, re-evaluation runs."""
