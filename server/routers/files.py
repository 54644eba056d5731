"""OpenAI's Files API for training data: upload (validated), list, retrieve, content, delete.
Admin key required: the files feed fine-tuning jobs, an admin operation."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile

from trainers.errors import DataError

from ..auth import require_admin
from ..errors import BadRequest, PayloadTooLarge, ResourceNotFound
from ..jobs.files import inspect_file
from ..jobs.store import new_id
from ..protocol import FileDeleted, FileList, FileObject

router = APIRouter(prefix="/v1", dependencies=[Depends(require_admin)])
PURPOSES = ("fine-tune",)
_CHUNK = 1 << 20


def file_object(row: dict) -> FileObject:
    return FileObject(id=row["id"], bytes=row["bytes"], created_at=row["created_at"], filename=row["filename"],
                      purpose=row["purpose"], format=row["format"], records=row["records"])


def _get(request: Request, file_id: str) -> dict:
    row = request.app.state.jobs.store.get_file(file_id)
    if row is None:
        raise ResourceNotFound(f"No such File object: {file_id}", param="file_id")
    return row


async def _save(upload: UploadFile, dest: Path, limit: int) -> int:
    size = 0
    with dest.open("wb") as out:
        while chunk := await upload.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"file exceeds the limit of {limit} bytes (max_file_bytes)", param="file")
            out.write(chunk)
    return size


@router.post("/files", response_model=FileObject)
async def create_file(request: Request) -> FileObject:
    jobs, limit = request.app.state.jobs, request.app.state.settings.max_file_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + _CHUNK:  # the form's own bytes ride along
        raise PayloadTooLarge(f"upload of {declared} bytes exceeds the limit of {limit} bytes", param="file")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadRequest("send multipart/form-data with a `file` and a `purpose` field", param="file")
    form = await request.form(max_files=1, max_fields=8)
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, UploadFile):
        raise BadRequest("missing `file`: attach the training data as a file field", param="file")
    if purpose not in PURPOSES:
        raise BadRequest(f"purpose {purpose!r} is not supported here; use one of {list(PURPOSES)}", param="purpose")
    file_id = new_id("file")
    dest = jobs.files_dir / f"{file_id}.jsonl"
    filename = Path(upload.filename or "upload.jsonl").name
    try:
        size = await _save(upload, dest, limit)
        fmt, records = await asyncio.to_thread(inspect_file, dest, filename)
    except (DataError, PayloadTooLarge) as e:
        dest.unlink(missing_ok=True)
        if isinstance(e, DataError):
            raise BadRequest(f"invalid training file: {e}", param="file", code="invalid_file") from None
        raise
    return file_object(jobs.store.add_file(file_id, filename, size, purpose, dest, fmt, records))


@router.get("/files", response_model=FileList)
async def list_files(request: Request, after: str | None = None, limit: int = Query(10000, ge=1, le=10000),
                     order: str = Query("desc", pattern="^(asc|desc)$"), purpose: str | None = None) -> FileList:
    rows, more = request.app.state.jobs.store.list_files(after, limit, order, purpose)
    data = [file_object(r) for r in rows]
    return FileList(data=data, has_more=more, first_id=data[0].id if data else None,
                    last_id=data[-1].id if data else None)


@router.get("/files/{file_id}", response_model=FileObject)
async def retrieve_file(file_id: str, request: Request) -> FileObject:
    return file_object(_get(request, file_id))


@router.get("/files/{file_id}/content")
async def file_content(file_id: str, request: Request) -> FileResponse:
    row = _get(request, file_id)
    return FileResponse(row["path"], filename=row["filename"], media_type="application/octet-stream")


@router.delete("/files/{file_id}", response_model=FileDeleted)
async def delete_file(file_id: str, request: Request) -> FileDeleted:
    row = _get(request, file_id)
    request.app.state.jobs.store.delete_file(file_id)
    Path(row["path"]).unlink(missing_ok=True)  # running jobs train on their own copy
    return FileDeleted(id=file_id)
