"""The named sizes every config file offers, shared by the zoo builder's and the experiments' configs.

"paper" (the default: the paper's setting), "medium" (a few CPU hours: enough LSTMs per task, trained
long enough for the paper's comparison to show), "quick" (CPU minutes), "smoke" (seconds, for tests).
"""

PRESETS = ("paper", "medium", "quick", "smoke")


def parse_preset(arg: str | None) -> str:
    """The preset named by a config argument (None or "": "paper"); a clear error for an unknown one."""
    preset = arg or "paper"
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {PRESETS}.")
    return preset
