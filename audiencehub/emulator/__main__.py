"""``python -m audiencehub.emulator``: the same as ``audiencehub hub-emulator``."""

from __future__ import annotations

from audiencehub.emulator.cli import hub_emulator

if __name__ == "__main__":
    hub_emulator(prog_name="hub-emulator")
