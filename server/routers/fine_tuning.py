"""OpenAI's Fine-tuning jobs API: create, list, retrieve, cancel, events, checkpoints.
Admin key required. Jobs run in worker processes managed by `app.state.jobs`."""

from __future__ import annotations

import random
import time

from fastapi import APIRouter, Depends, Query, Request

from ..auth import require_admin
from ..errors import BadRequest, ResourceNotFound
from ..jobs.spec import resolve
from ..jobs.store import TERMINAL, new_id
from ..protocol import (CreateJobRequest, FineTuningJob, FineTuningJobCheckpoint, FineTuningJobCheckpointList,
                        FineTuningJobEvent, FineTuningJobEventList, FineTuningJobList)
from ..proxy import parse_request, read_body

router = APIRouter(prefix="/v1/fine_tuning", dependencies=[Depends(require_admin)])
OPENAI_HYPER = ("batch_size", "learning_rate_multiplier", "n_epochs")


def job_object(row: dict) -> FineTuningJob:
    spec, kind = row["spec"], row["spec"]["method_type"]
    hyper = spec["hyperparameters"]
    return FineTuningJob(
        id=row["id"], created_at=row["created_at"], error=row["error"] if row["status"] == "failed" else None,
        fine_tuned_model=row["fine_tuned_model"], finished_at=row["finished_at"],
        hyperparameters={k: hyper[k] for k in OPENAI_HYPER}, model=spec["model"], result_files=row["result_files"],
        seed=spec["seed"], status=row["status"], trained_tokens=row["trained_tokens"],
        training_file=spec["training_file"], validation_file=spec["validation_file"],
        estimated_finish=_eta(row), metadata=spec["metadata"], user_provided_suffix=spec["suffix"],
        method={"type": kind, kind: {"hyperparameters": hyper, **({"grader": spec["grader"]} if "grader" in spec
                                                                   else {})}},
        progress={"step": row["step"], "total_steps": row["total_steps"]},
    )


def _eta(row: dict) -> int | None:
    step, total, started = row["step"], row["total_steps"], row["started_at"]
    if row["status"] != "running" or not step or not total or not started:
        return None
    return int(started + (time.time() - started) * total / step)


def _job(request: Request, job_id: str) -> dict:
    row = request.app.state.jobs.store.get_job(job_id)
    if row is None:
        raise ResourceNotFound(f"No fine-tuning job with id {job_id!r}", param="fine_tuning_job_id")
    return row


@router.post("/jobs", response_model=FineTuningJob)
async def create_job(request: Request) -> FineTuningJob:
    state = request.app.state
    body = CreateJobRequest(**parse_request(await read_body(request, state.settings.max_body_bytes),
                                            CreateJobRequest))
    job_id = new_id("ftjob")
    seed = body.seed if body.seed is not None else random.randrange(2**31)
    spec = resolve(body, state.router, state.jobs.store, job_id, seed, state.settings)
    row = state.jobs.store.add_job(job_id, spec)
    state.jobs.store.add_event(job_id, f"Created fine-tuning job: {job_id}")
    state.jobs.wake()
    return job_object(row)


@router.get("/jobs", response_model=FineTuningJobList)
async def list_jobs(request: Request, after: str | None = None, limit: int = Query(20, ge=1, le=100)
                    ) -> FineTuningJobList:
    rows, more = request.app.state.jobs.store.list_jobs(after, limit)
    return FineTuningJobList(data=[job_object(r) for r in rows], has_more=more)


@router.get("/jobs/{job_id}", response_model=FineTuningJob)
async def retrieve_job(job_id: str, request: Request) -> FineTuningJob:
    return job_object(_job(request, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=FineTuningJob)
async def cancel_job(job_id: str, request: Request) -> FineTuningJob:
    row = _job(request, job_id)
    if row["status"] in TERMINAL:
        raise BadRequest(f"job {job_id} is already {row['status']}; only a job that has not finished can be "
                         "cancelled", param="fine_tuning_job_id", code="job_not_cancellable")
    return job_object(await request.app.state.jobs.cancel(job_id))


@router.get("/jobs/{job_id}/events", response_model=FineTuningJobEventList)
async def list_events(job_id: str, request: Request, after: str | None = None,
                      limit: int = Query(20, ge=1, le=1000)) -> FineTuningJobEventList:
    _job(request, job_id)
    rows, more = request.app.state.jobs.store.list_events(job_id, after, limit)
    data = [FineTuningJobEvent(id=f"ftevent-{r['seq']}", created_at=r["created_at"], level=r["level"],
                               message=r["message"], data=r["data"], type=r["type"]) for r in rows]
    return FineTuningJobEventList(data=data, has_more=more)


@router.get("/jobs/{job_id}/checkpoints", response_model=FineTuningJobCheckpointList)
async def list_checkpoints(job_id: str, request: Request, after: str | None = None,
                           limit: int = Query(10, ge=1, le=100)) -> FineTuningJobCheckpointList:
    row = _job(request, job_id)
    rows, more = request.app.state.jobs.store.list_checkpoints(job_id, after, limit)
    name = row["spec"]["fine_tuned_model"]
    data = [FineTuningJobCheckpoint(id=r["id"], created_at=r["created_at"], fine_tuning_job_id=job_id,
                                    fine_tuned_model_checkpoint=f"{name}:ckpt-step-{r['step']}",
                                    metrics=r["metrics"], step_number=r["step"]) for r in rows]
    return FineTuningJobCheckpointList(data=data, has_more=more, first_id=data[0].id if data else None,
                                       last_id=data[-1].id if data else None)
