"""Status lines shown under the button while a request runs and when it ends."""

from __future__ import annotations

from backend.progress import Fetching, Progress, Queued, Running, Submitted, Uploading, Waiting
from backend.schema import GenerationResult

_LOG_LINES_SHOWN = 6


def describe_progress(event: Progress, *, shown: bool = False) -> str:
    """The status line of `event`. `shown`: the page already shows the results
    (from fal's CDN) while the app saves its own copies."""
    if isinstance(event, Waiting):
        count = event.yours_ahead
        mine = (
            "none of your runs are ahead"
            if not count
            else f"{count} of your {'run is' if count == 1 else 'runs are'} ahead"
        )
        return f"⏳ Waiting: the app is busy; {mine} · {event.elapsed_s:.1f} s"
    if isinstance(event, Uploading):
        plural = "file" if event.count == 1 else "files"
        return f"⬆️ Uploading {event.count} {plural} to fal · {event.elapsed_s:.1f} s"
    if isinstance(event, Submitted):
        return f"⏳ Sent to fal · request `{event.request_id}` · {event.elapsed_s:.1f} s"
    if isinstance(event, Queued):
        ahead = "next in line" if event.position <= 0 else f"position {event.position} in line"
        return f"⏳ Waiting in fal's queue ({ahead}) · {event.elapsed_s:.1f} s"
    if isinstance(event, Running):
        text = f"🎨 Generating · {event.elapsed_s:.1f} s"
        if event.logs:
            lines = "\n".join(event.logs[-_LOG_LINES_SHOWN:])
            text += f"\n\n```text\n{lines}\n```"
        return text
    if isinstance(event, Fetching):
        plural = "image" if event.count == 1 else "images"
        if shown:
            return f"💾 Saving copies of {event.count} {plural} · {event.elapsed_s:.1f} s"
        return f"⬇️ Downloading {event.count} {plural} · {event.elapsed_s:.1f} s"
    return ""


def describe_result(result: GenerationResult) -> str:
    if result.key_source == "demo":
        count = len(result.images)
        plural = "image" if count == 1 else "images"
        return (
            f"🧪 **Demo mode**: {count} placeholder {plural}, nothing was sent to fal. "
            "Add a fal key (above) for real images."
        )
    return _describe_real(result)


def _describe_real(result: GenerationResult) -> str:
    total = result.timings.total_s if result.timings else 0.0
    count = len(result.images)
    plural = "image" if count == 1 else "images"
    request = f"request `{result.request_id}`"
    text = f"✅ {count} {plural} in {total:.1f} s · {result.key_source} · {request}"
    if result.failures:
        listed = len(result.images) + len(result.failures)
        reasons = "; ".join(f"image {f.index + 1}: {f.reason}" for f in result.failures)
        text = (
            f"⚠️ {count} of {listed} images arrived ({reasons}). "
            f"The others are shown below · {request}"
        )
    return text


def describe_error(message: str) -> str:
    return f"❌ {message}"
