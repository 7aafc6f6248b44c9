"""Download routes (the spec's "Model Downloads") and the hub search the download page uses.

`POST /api/models/download` resolves the request (through the hub for hub files, so a missing
repository or a refused token is a 4xx now, not a failed download later) and answers with the
queued download; progress is `GET /api/models/downloads/{id}` or the `download` events. The
browser never calls the hub: search and file listings go through the server, with the stored
token, and come back with a fits verdict for this machine. The work is `manage.downloads`'.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from claracore.errors import InvalidRequestError
from claracore.protocol import downloads as p
from claracore.server.deps import DownloadsDep, json_model, require_key
from claracore.server.openapi import body_doc, schema_of

router = APIRouter(prefix="/api/models", dependencies=[Depends(require_key)])
DownloadBody = Annotated[p.DownloadRequest, Depends(json_model(p.DownloadRequest))]


@router.post(
    "/download", response_model=p.DownloadStatus, openapi_extra=body_doc(schema_of(p.DownloadRequest))
)
async def download(body: DownloadBody, downloads: DownloadsDep) -> p.DownloadStatus:
    """Queue a download from the hub (`repo` + `filename`, or a hub URL) or any http(s) URL."""
    return (await downloads.create(body)).view()


@router.post("/download/cancel", response_model=p.CancelAllResult)
async def cancel_all(downloads: DownloadsDep) -> p.CancelAllResult:
    """Cancel every queued, running or paused download (their partial files are deleted)."""
    cancelled = await downloads.cancel_all()
    return p.CancelAllResult(
        message=f"cancelled {len(cancelled)} download(s)", cancelled=[d.id for d in cancelled]
    )


@router.get("/downloads", response_model=p.DownloadList)
async def list_downloads(downloads: DownloadsDep) -> p.DownloadList:
    """Every download ClaraCore remembers, oldest first."""
    return p.DownloadList(downloads=[d.view() for d in downloads.all()])


@router.get("/downloads/{download_id}", response_model=p.DownloadStatus)
async def get_download(download_id: str, downloads: DownloadsDep) -> p.DownloadStatus:
    return downloads.get(download_id).view()


@router.post("/downloads/{download_id}/pause", response_model=p.DownloadStatus)
async def pause(download_id: str, downloads: DownloadsDep) -> p.DownloadStatus:
    """Stop it, keeping the bytes on disk (409 when it is not queued or running)."""
    return (await downloads.pause(download_id)).view()


@router.post("/downloads/{download_id}/resume", response_model=p.DownloadStatus)
async def resume(download_id: str, downloads: DownloadsDep) -> p.DownloadStatus:
    """Queue a paused download again, or retry a failed one, from the bytes on disk."""
    return (await downloads.resume(download_id)).view()


@router.post("/downloads/{download_id}/cancel", response_model=p.DownloadStatus)
async def cancel(download_id: str, downloads: DownloadsDep) -> p.DownloadStatus:
    """Stop it for good and delete its partial files."""
    return (await downloads.cancel(download_id)).view()


@router.delete("/downloads/{download_id}", response_model=p.DownloadStatus)
async def remove(download_id: str, downloads: DownloadsDep) -> p.DownloadStatus:
    """Remove it from the list (cancelling it first if it still runs); a finished model stays."""
    return (await downloads.remove(download_id)).view()


@router.get("/search", response_model=p.SearchResult)
async def search(
    downloads: DownloadsDep,
    q: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> p.SearchResult:
    """GGUF repositories on the hub whose name contains `q`, most downloaded first."""
    hits = await downloads.search(q.strip(), limit)
    return p.SearchResult(query=q, results=[p.SearchHit(**h) for h in hits])


@router.get("/search/{owner}/{name}/files", response_model=p.RepoFiles)
async def repo_files(
    owner: str,
    name: str,
    downloads: DownloadsDep,
    revision: Annotated[str, Query(max_length=256)] = "main",
) -> p.RepoFiles:
    """A repository's GGUF models (split parts as one, projectors offered), each with its size,
    quantisation and whether it fits this machine (on the GPU, in RAM, or too big)."""
    try:
        repo = p.repo_id(f"{owner}/{name}")
    except ValueError as exc:
        raise InvalidRequestError(f"repo: {exc}", param="repo") from None
    try:
        rev = p.revision(revision)
    except ValueError as exc:
        raise InvalidRequestError(f"revision: {exc}", param="revision") from None
    return await downloads.repo_files(repo, rev)
