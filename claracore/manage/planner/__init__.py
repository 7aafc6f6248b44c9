"""The setup planner: which settings (context, layers, KV cache, slots) fit this machine.

`options` validates what the planner is told (the machine, the user's options), `fit` sizes one
model file to the budget, `planner` plans them all and merges the result into the existing
config, keeping hand edits. "Plan" in ClaraCore means this and nothing else.
"""

from claracore.manage.planner.fit import ModelFileLike, ModelPlan
from claracore.manage.planner.options import Hardware, PlanOptions
from claracore.manage.planner.planner import GENERATED, PLANNED, Plan, margin, plan, plan_config

__all__ = [
    "GENERATED",
    "PLANNED",
    "Hardware",
    "ModelFileLike",
    "ModelPlan",
    "Plan",
    "PlanOptions",
    "margin",
    "plan",
    "plan_config",
]
