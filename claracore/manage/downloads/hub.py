"""The model hub, through `huggingface_hub`: search, a repository's files, what a download fetches.

`huggingface_hub` speaks the hub's API (its routes, pagination, error headers) and knows its
endpoint (`HF_ENDPOINT`, or the one given) and the user's token (`HF_TOKEN`, `hf auth login`);
this module asks it questions and turns its exceptions into ClaraCore's: a missing repository,
revision or file is a NotFoundError, a gated or private one a RemoteAccessError, a hub that does
not answer a RemoteError. Every call blocks, so async callers run it in a thread.

A download is pinned to the commit its revision points to when it starts, so resuming it days
later fetches the same bytes even if the branch moved. The token goes to the hub's own origin
only (`auth_headers`): a plain URL download never sees it, and the HTTP client drops it when the
hub redirects to its CDN.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import httpx2
from huggingface_hub import HfApi, constants, get_token, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import ExpandModelProperty_T, RepoFile

from claracore.errors import InvalidRequestError, NotFoundError, RemoteAccessError, RemoteError
from claracore.manage.downloads.transfer import TIMEOUT

log = logging.getLogger(__name__)

#: What a search asks the hub to say about each repository.
_EXPAND: list[ExpandModelProperty_T] = [
    "author",
    "downloads",
    "likes",
    "lastModified",
    "gated",
    "pipeline_tag",
    "tags",
]
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a hub repository at a commit; `sha256` is its LFS checksum (None if not in LFS)."""

    path: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class Resolved:
    """What a hub download fetches: the repository, the commit its revision names, the files."""

    repo: str
    revision: str
    commit: str
    files: list[RemoteFile]


class Hub:
    """One hub endpoint. `endpoint` None means `huggingface_hub`'s own (`HF_ENDPOINT` or the public hub)."""

    def __init__(self, endpoint: str | None = None) -> None:
        self.endpoint = (endpoint or constants.ENDPOINT).rstrip("/")

    def token(self, *candidates: str | None) -> str | None:
        """The first token given, else the environment's (`HF_TOKEN`, the `hf auth login` file)."""
        return next((t for t in candidates if t), None) or _environment_token()

    def _api(self, token: str | None) -> HfApi:
        return HfApi(endpoint=self.endpoint, token=token or False, library_name="claracore")

    # ------------------------------------------------------------ questions

    def search(self, query: str, *, limit: int, token: str | None) -> list[dict[str, Any]]:
        """GGUF repositories whose name contains `query`, most downloaded first."""
        with self._errors(query):
            found = self._api(token).list_models(
                search=query or None, filter="gguf", sort="downloads", limit=limit, expand=_EXPAND
            )
            return [
                {
                    "id": m.id,
                    "author": m.author or m.id.partition("/")[0],
                    "downloads": m.downloads,
                    "likes": m.likes,
                    "updated": m.last_modified.isoformat() if m.last_modified else None,
                    "gated": bool(m.gated),
                    "pipelineTag": m.pipeline_tag,
                    "tags": list(m.tags or []),
                }
                for m in found
            ]

    def commit(self, repo: str, revision: str, token: str | None) -> str:
        """The commit `revision` (a branch, tag or commit) names in `repo`."""
        with self._errors(repo, revision):
            info = self._api(token).model_info(repo, revision=revision)
        if not info.sha:
            raise RemoteError(f"the hub did not say which commit {repo}@{revision} is")
        return info.sha

    def files(self, repo: str, revision: str, token: str | None) -> tuple[str, list[RemoteFile]]:
        """The commit and every file of `repo` at `revision`, sub-folders included."""
        commit = self.commit(repo, revision, token)
        with self._errors(repo, revision):
            tree = self._api(token).list_repo_tree(repo, recursive=True, revision=commit)
            return commit, [_remote(f) for f in tree if isinstance(f, RepoFile)]

    def resolve(self, repo: str, paths: list[str], revision: str, token: str | None) -> Resolved:
        """The files a download of `paths` fetches, with sizes and checksums, pinned to a commit.

        Raises NotFoundError naming the first path the repository does not have.
        """
        commit = self.commit(repo, revision, token)
        with self._errors(repo, revision):
            infos = self._api(token).get_paths_info(repo, paths, revision=commit)
        found = {f.path: _remote(f) for f in infos if isinstance(f, RepoFile)}
        for path in paths:
            if path not in found:
                raise NotFoundError(
                    f"{repo}@{revision} has no file {path}",
                    code="FILE_NOT_FOUND",
                    details={"repo": repo, "revision": revision, "filename": path},
                )
        return Resolved(repo, revision, commit, [found[p] for p in paths])

    # ------------------------------------------------------------ URLs

    def file_url(self, repo: str, path: str, commit: str) -> str:
        return hf_hub_url(repo, path, revision=commit, endpoint=self.endpoint)

    def parse_url(self, url: str) -> tuple[str, str, str] | None:
        """(repo, revision, path) when `url` is a file of this hub (`.../org/name/resolve/rev/path`)."""
        parts, own = urlsplit(url), urlsplit(self.endpoint)
        if (parts.scheme, parts.netloc) != (own.scheme, own.netloc):
            return None
        base = own.path.rstrip("/")
        if not parts.path.startswith(base + "/"):
            return None
        m = _RESOLVE.match(parts.path[len(base) :])
        if m is None:
            return None
        return m["repo"], unquote(m["revision"]), unquote(m["path"])

    def auth_headers(self, url: str, token: str | None) -> dict[str, str]:
        """The Authorization header for `url` when it is on the hub's own origin, else none."""
        parts, own = urlsplit(url), urlsplit(self.endpoint)
        if token and (parts.scheme, parts.netloc) == (own.scheme, own.netloc):
            return {"Authorization": f"Bearer {token}"}
        return {}

    def read_head(self, url: str, token: str | None, length: int) -> bytes:
        """The first `length` bytes of a file (an HTTP range; a server that ignores ranges is cut off)."""
        headers = {"Range": f"bytes=0-{length - 1}", **self.auth_headers(url, token)}
        try:
            with (
                httpx.Client(timeout=TIMEOUT, follow_redirects=True) as client,
                client.stream("GET", url, headers=headers) as r,
            ):
                if r.status_code in (401, 403):
                    raise RemoteAccessError(
                        f"the hub refused {_safe(url)} ({r.status_code})", status=r.status_code
                    )
                if r.status_code not in (200, 206):
                    raise RemoteError(
                        f"the hub answered {r.status_code} for {_safe(url)}", status=r.status_code
                    )
                data = bytearray()
                for chunk in r.iter_bytes():
                    data += chunk
                    if len(data) >= length:
                        break
                return bytes(data[:length])
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot read {_safe(url)}: {exc}") from None

    # ------------------------------------------------------------ errors

    @contextmanager
    def _errors(self, repo: str, revision: str | None = None) -> Iterator[None]:
        """huggingface_hub's exceptions as ClaraCore's (the most specific first: Gated is a NotFound)."""
        where = f"{repo}@{revision}" if revision else repo
        try:
            yield
        except GatedRepoError:
            raise RemoteAccessError(
                f"{repo} is gated: accept its terms on the hub, then give an HF token that has access",
                status=403,
                details={"repo": repo},
            ) from None
        except RepositoryNotFoundError:
            raise NotFoundError(
                f"repository {repo} not found on the hub (a private one needs an HF token that can read it)",
                code="REPO_NOT_FOUND",
                details={"repo": repo},
            ) from None
        except RevisionNotFoundError:
            raise NotFoundError(
                f"{repo} has no revision {revision}",
                code="REVISION_NOT_FOUND",
                details={"repo": repo, "revision": revision},
            ) from None
        except RemoteEntryNotFoundError:
            raise NotFoundError(f"{where}: file not found", code="FILE_NOT_FOUND") from None
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status in (401, 403):
                raise RemoteAccessError(
                    f"the hub refused access to {where} ({status}): check the HF token", status=status
                ) from None
            raise RemoteError(f"the hub failed on {where} ({status})", status=status) from None
        except httpx2.HTTPError as exc:
            raise RemoteError(f"cannot reach the hub at {self.endpoint}: {exc}") from None
        except HFValidationError as exc:  # what it refuses to send (the routes check first)
            raise InvalidRequestError(f"repo: {exc}", param="repo") from None


def _remote(f: RepoFile) -> RemoteFile:
    return RemoteFile(path=f.path, size=int(f.size), sha256=f.lfs.sha256 if f.lfs else None)


def _environment_token() -> str | None:
    try:
        return get_token()
    except Exception as exc:  # an OIDC exchange that failed: downloads go on without a token
        log.warning("no HF token from the environment: %s", type(exc).__name__)
        return None


def _safe(url: str) -> str:
    """A URL for messages: no query string (a CDN's signed URL carries credentials there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{quote(unquote(parts.path))}"
