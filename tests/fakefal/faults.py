"""What can go wrong, on purpose.

A `Fault` is injected with `FakeFal.inject(fault, times=n)`. Faults for "upload"
wait in their own FIFO and are used by the next upload requests (CDN
`POST /files/upload` or REST `POST /storage/upload/initiate`); every other fault
waits in the submissions FIFO and is attached to the next model request (queue
submit or direct run), one fault per request. `inject(fault, prompt="...")`
attaches it instead to the next requests whose prompt is exactly that one, so
that concurrent clients each get the fault meant for them (those faults come
first; a request with no fault waiting for its prompt takes the FIFO's next).

Where an attached fault fires:
- `hang(where)` answers nothing at all there, until `reset()`.
- `where="submit"` faults answer the submit/run POST itself (the submission is
  recorded with state "REJECTED" and never runs).
- `where="status"` faults answer that request's status polls and status streams.
- `where="stream"` faults answer its status stream (`stream_refused`: 404;
  `stream_breaks`: a few events, then the connection drops).
- `where="result"` faults answer its result fetch (for a direct run: the POST).
- Outcome faults (`complete_with_error`, `content_policy`, `no_images`,
  `broken_image_urls`, `stalled_image_urls`, `dropped_image_urls`) and timing faults
  (`never_finish`, `slow`) change how the request runs.

`hits` limits how many times a status/result fault fires within its request
(None = every time), e.g. `truncated_result(hits=1)` models a transient glitch
that fal_client's retry hides.

A body with schema errors completes with its 422 before outcome and timing faults
apply (as fal validates first); transport faults still replace the HTTP answers.
A direct run has no status polls: a "status" fault attached to it is used up
without effect.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Where = Literal["submit", "status", "stream", "result", "upload"]
FaultKind = Literal[
    "http_error",
    "drop_connection",
    "malformed_result",
    "fields_missing",
    "truncated_result",
    "complete_with_error",
    "content_policy",
    "never_finish",
    "no_images",
    "broken_image_urls",
    "stalled_image_urls",
    "dropped_image_urls",
    "slow",
    "hang",
    "stream_breaks",
]

# Faults that replace one HTTP answer (at `where`) rather than change the run.
TRANSPORT_KINDS: frozenset[str] = frozenset(
    {
        "http_error",
        "drop_connection",
        "malformed_result",
        "fields_missing",
        "truncated_result",
        "hang",
        "stream_breaks",
    }
)
CONTENT_POLICY_MESSAGE = (
    "The request was rejected by the content policy: the prompt may contain content "
    "that is not allowed by our safety system."
)


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    where: Where = "result"
    status: int = 500
    detail: Any = None
    error_type: str | None = None
    ingress: bool = False  # look like an nginx gateway error (fal_client retries those)
    seconds: float = 0.0
    indexes: tuple[int, ...] = ()
    hits: int | None = None
    after: int = 0  # stream_breaks: events sent before the connection drops

    @classmethod
    def http_error(
        cls,
        where: Where,
        status: int,
        detail: Any = "Internal Server Error",
        error_type: str | None = None,
        *,
        ingress: bool = False,
        hits: int | None = None,
    ) -> Fault:
        """Answer `status` with `{"detail": detail}` (+ `error_type` in body and
        `x-fal-error-type` header when given). 5xx answers carry
        `x-fal-request-id` unless `ingress=True`, which sends an nginx-looking HTML
        page instead, the only 5xx that fal_client retries (502/503/504)."""
        return cls(
            "http_error",
            where=where,
            status=status,
            detail=detail,
            error_type=error_type,
            ingress=ingress,
            hits=hits,
        )

    @classmethod
    def drop_connection(cls, where: Where, *, hits: int | None = None) -> Fault:
        """Close the socket without sending any response."""
        return cls("drop_connection", where=where, hits=hits)

    @classmethod
    def stream_refused(cls, *, hits: int | None = None) -> Fault:
        """The status stream answers 404 (as for a request fal streams no status
        for); status polls still work."""
        return cls.http_error("stream", 404, "Not Found", hits=hits)

    @classmethod
    def stream_breaks(cls, *, after: int = 1, hits: int | None = None) -> Fault:
        """The status stream sends `after` events, then its connection drops
        (midway: before COMPLETED)."""
        return cls("stream_breaks", where="stream", after=after, hits=hits)

    @classmethod
    def hang(cls, where: Where, *, hits: int | None = None) -> Fault:
        """Never answer: the request is read and then nothing comes back (until
        reset(), or ten minutes), as when fal's gateway hangs."""
        return cls("hang", where=where, hits=hits)

    @classmethod
    def malformed_result(cls, *, hits: int | None = None) -> Fault:
        """The result fetch answers 200 with a body that is not JSON."""
        return cls.malformed_answer("result", hits=hits)

    @classmethod
    def malformed_answer(cls, where: Where, *, hits: int | None = None) -> Fault:
        """The answer at `where` is 200 with a body that is not JSON."""
        return cls("malformed_result", where=where, hits=hits)

    @classmethod
    def fields_missing(cls, where: Where, *, hits: int | None = None) -> Fault:
        """The answer at `where` is 200 with JSON, but none of the fields fal sends
        there (no `request_id`, `status`, `access_url`, `upload_url`, `images`)."""
        return cls("fields_missing", where=where, hits=hits)

    @classmethod
    def truncated_result(cls, *, hits: int | None = None) -> Fault:
        """The result fetch sends headers and half the body, then closes the socket
        (Content-Length promises more than arrives)."""
        return cls("truncated_result", where="result", hits=hits)

    @classmethod
    def complete_with_error(
        cls,
        error: str = "Internal error while generating the image",
        error_type: str = "runner_server_error",
    ) -> Fault:
        """Status COMPLETED carries `error`/`error_type`; the result answers 500
        `{"detail": error, "error_type": error_type}`."""
        return cls("complete_with_error", detail=error, error_type=error_type)

    @classmethod
    def content_policy(
        cls, msg: str = CONTENT_POLICY_MESSAGE, *, image_index: int | None = None
    ) -> Fault:
        """The result answers 422 with a `content_policy_violation` detail item about
        the prompt, or with `image_index` about that input image (an edit's
        `loc` `["body", "image_urls", image_index]`)."""
        return cls(
            "content_policy",
            detail=msg,
            error_type="content_policy_violation",
            indexes=() if image_index is None else (image_index,),
        )

    @classmethod
    def never_finish(cls) -> Fault:
        """Stays IN_PROGRESS until cancelled (a direct run hangs)."""
        return cls("never_finish")

    @classmethod
    def no_images(cls) -> Fault:
        """Completes normally with `{"images": []}`."""
        return cls("no_images")

    @classmethod
    def broken_image_urls(cls, indexes: Iterable[int]) -> Fault:
        """The result lists every image, but the files at these indexes answer 404
        (with sync_mode they become file URLs that 404 instead of data URIs)."""
        return cls("broken_image_urls", indexes=tuple(indexes))

    @classmethod
    def stalled_image_urls(cls, indexes: Iterable[int]) -> Fault:
        """The result lists every image, but the files at these indexes never answer
        (the download hangs until the client gives up or the fake is reset)."""
        return cls("stalled_image_urls", indexes=tuple(indexes))

    @classmethod
    def dropped_image_urls(cls, indexes: Iterable[int], *, hits: int = 1) -> Fault:
        """The result lists every image, but the first `hits` downloads of the files at
        these indexes lose their connection before any answer, as a kept-alive
        connection closed by the server at the moment it is reused does."""
        return cls("dropped_image_urls", indexes=tuple(indexes), hits=hits)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """`seconds` more IN_PROGRESS time for that one request."""
        return cls("slow", seconds=seconds)
