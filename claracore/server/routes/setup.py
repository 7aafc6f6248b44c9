"""Auto-setup routes: plan a config for this machine from the tracked folders, in the background.

`generate-all` rescans the tracked folders first; `regenerate-from-db` plans from what the
database already knows and then applies the result with a soft restart (as the spec says). Both
run `manage.setup`'s one workflow and answer at once: it reads every model's header, so it runs
as a task whose progress `GET /api/setup/progress` reports. One runs at a time (409).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from claracore.errors import InvalidRequestError
from claracore.manage.planner import PlanOptions
from claracore.manage.planner.options import OPTION_KEYS
from claracore.protocol import manage as m
from claracore.server.deps import JsonBody, StateDep, json_model, require_key
from claracore.server.openapi import body_doc, schema_of
from claracore.server.state import AppState

router = APIRouter(prefix="/api", dependencies=[Depends(require_key)])
#: generate-all's body: the planner's options at top level (`PlanOptions.from_api` checks them).
PLAN_OPTIONS = {"type": "object", "properties": {k: {} for k in OPTION_KEYS}, "additionalProperties": False}
RegenerateBody = Annotated[m.RegenerateRequest, Depends(json_model(m.RegenerateRequest))]


async def _start(state: AppState, options: PlanOptions, *, rescan: bool) -> dict[str, Any]:
    apply = None if rescan else state.engine.reconfigure
    job = await state.setup.start(options, rescan=rescan, apply=apply)
    return {
        "message": f"{job.state['currentOperation']} started",
        "status": "started",
        "progressUrl": "/api/setup/progress",
        "needsRestart": rescan,
        "restartMessage": "Poll /api/setup/progress; a soft restart applies the new configuration."
        if rescan
        else "The new configuration is applied with a soft restart when it is written.",
    }


@router.post("/config/generate-all", openapi_extra=body_doc(PLAN_OPTIONS, required=False))
async def generate_all(options: JsonBody, state: StateDep) -> dict[str, Any]:
    """Rescan the tracked folders and write a config planned for this machine (options at top level)."""
    if not isinstance(options, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    plan_options = PlanOptions.from_api(options, state.settings.planner_defaults())
    return await _start(state, plan_options, rescan=True)


@router.post(
    "/config/regenerate-from-db", openapi_extra=body_doc(schema_of(m.RegenerateRequest), required=False)
)
async def regenerate_from_db(body: RegenerateBody, state: StateDep) -> dict[str, Any]:
    """Plan from the scanned files in the database (`{"options": {...}}`), write, soft-restart."""
    plan_options = PlanOptions.from_api(body.options, state.settings.planner_defaults())
    return await _start(state, plan_options, rescan=False)


@router.get("/setup/progress")
async def progress(state: StateDep) -> dict[str, Any]:
    """The running (or last) job: status/phase, percent, files read of total, and its result."""
    return state.setup.progress()
