#!/usr/bin/env python3
"""A job-registry client in plain Python (standard library only), built from docs/wire.md alone.

Submit a job, then stream its tokens; a connection that drops before the job's terminal event is
reopened with ``Last-Event-ID: <last seq seen>``, so no token is lost or repeated.

Library use::

    from job_client import submit, stream, JobFailed, JobCancelled

    job_id, sse_url = submit("http://127.0.0.1:8080", {"prompt": "a b c", "max_tokens": 6})
    try:
        for seq, token in stream("http://127.0.0.1:8080", sse_url):
            print(seq, token)          # the generator returns on the `done` event
    except JobFailed as e:             # the `error` event: e.state == "failed", e.error
        print("failed:", e.error)

Command line (``--help`` lists every flag)::

    python3 examples/python/job_client.py --url http://127.0.0.1:8080 --prompt "a b c" --max-tokens 9

Exit status: 0 done (completed), 3 failed, 4 cancelled, 1 any other error (refused, unreachable).
"""

from __future__ import annotations

import argparse
import codecs
import http.client
import json
import os
import re
import socket
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs, urljoin, urlsplit

__all__ = [
    "submit",
    "stream",
    "JobClientError",
    "ApiError",
    "JobEnded",
    "JobFailed",
    "JobCancelled",
    "StreamGaveUp",
]

DEFAULT_BASE_PATH = "/v1/inference"
# The server's `retry:` hint replaces this as soon as a stream sends one.
DEFAULT_RECONNECT_MS = 1000
# Idle streams get a `: ping` comment every 15 s by default; four silent periods mean a dead connection.
DEFAULT_READ_TIMEOUT_S = 60.0
# Statuses worth asking again after a pause (the server is busy or unavailable for a while).
TRANSIENT = frozenset({429, 502, 503, 504})
# Longest pause taken for a `Retry-After`, in seconds.
MAX_RETRY_AFTER_S = 60.0
# Longest pause between reconnects while they keep failing, in ms.
MAX_BACKOFF_MS = 30_000


# ---------------------------------------------------------------------------------------------------------
# errors


class JobClientError(Exception):
    """Base class of every error this module raises."""


class ApiError(JobClientError):
    """A non-2xx answer: ``status``, the server's ``code`` (``{"error":{"code","message"}}``) and message.

    ``retry_after`` is the ``Retry-After`` header in seconds when the server sent one (429, 503).
    """

    def __init__(self, status: int, code: str, message: str, retry_after: Optional[float] = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class JobEnded(JobClientError):
    """The job ended other than completed; ``state`` is ``failed`` or ``cancelled``, ``error`` its text."""

    def __init__(self, job_id: str, state: str, error: str):
        super().__init__(f"job {job_id} {state}: {error}")
        self.job_id = job_id
        self.state = state
        self.error = error


class JobFailed(JobEnded):
    """The stream's terminal ``error`` event said ``"state":"failed"``."""


class JobCancelled(JobEnded):
    """The stream's terminal ``error`` event said ``"state":"cancelled"``."""


class StreamGaveUp(JobClientError):
    """The stream kept dropping (or the server kept answering 429/5xx) past ``max_retries`` attempts."""

    def __init__(self, message: str, last_seq: Optional[int], cause: Optional[BaseException]):
        super().__init__(message)
        self.last_seq = last_seq
        self.cause = cause


# ---------------------------------------------------------------------------------------------------------
# submit


def submit(
    base_url: str,
    payload: Any,
    api_key: Optional[str] = None,
    *,
    base_path: str = DEFAULT_BASE_PATH,
    timeout: float = 30.0,
) -> Tuple[str, str]:
    """POSTs ``payload`` as JSON to ``{base_url}{base_path}``; returns ``(job_id, sse_url)`` of the 202.

    ``sse_url`` is as the server sent it (a path, maybe with a signed ``?token=``); pass it to :func:`stream`.

    :raises ApiError: for any other answer (400 INVALID_PAYLOAD, 401, 413, 415, 429 CAPACITY, 503...).
    """
    url = urljoin(base_url, base_path)
    body = json.dumps(payload).encode("utf-8")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    status, resp_headers, text = _request("POST", url, headers, body, timeout)
    if status != 202:
        raise _api_error(status, resp_headers, text)
    answer = json.loads(text)
    return answer["job_id"], answer["sse_url"]


# ---------------------------------------------------------------------------------------------------------
# stream


def stream(
    base_url: str,
    sse_url: str,
    after: Optional[int] = None,
    api_key: Optional[str] = None,
    *,
    max_retries: int = 5,
    reconnect_ms: Optional[int] = None,
    timeout: float = DEFAULT_READ_TIMEOUT_S,
    drop_after: Optional[int] = None,
    on_reconnect: Optional[Callable[[Optional[int], int, str], None]] = None,
) -> Iterator[Tuple[int, Any]]:
    """Yields ``(seq, token)`` for each token of the job after seq ``after`` (all when ``None``).

    Ends on the terminal event: returns on ``done``; raises :class:`JobFailed` / :class:`JobCancelled` on
    ``error``. A connection that ends without a terminal event (dropped, timed out, server restarting) is
    reopened after the server's ``retry:`` hint (or ``reconnect_ms``), doubled after each further failure up
    to 30 s, with ``Last-Event-ID: <last seq>``; 429/502/503/504 are asked again after their
    ``Retry-After``. Tokens at or before the last seq are skipped, so nothing repeats. ``max_retries`` bounds
    consecutive attempts without a new token. ``timeout`` (s) is how long a silent connection is trusted:
    the server sends ``: ping`` every 15 s by default.

    A signed ``sse_url`` (``?token=...``) is used as given, without ``Authorization``; if a reconnect gets
    401 (the token expired: 5 minutes by default) and ``api_key`` is set, the key is sent instead.

    A ``204`` (``after`` was the terminal event's own id: the end was seen before) looks the job up
    (``GET {base}/{id}``) and ends as that snapshot says.

    ``drop_after=K`` closes the socket once, right after the K-th token this call yields, to exercise resume.
    ``on_reconnect(last_seq, attempt, reason)`` is called before each reconnect.

    :raises ApiError: a refusal that asking again will not change (400, 401, 404, 410 REPLAY_EXPIRED...).
    :raises StreamGaveUp: more than ``max_retries`` consecutive failed attempts.
    """
    url = urljoin(base_url, sse_url)
    job_id = _job_id_of(url)
    has_token = "token" in parse_qs(urlsplit(url).query)
    use_key = api_key is not None and not has_token
    last: Optional[int] = after
    yielded = 0
    dropped = False
    failures = 0
    parser = _SseParser()  # keeps the `retry:` hint across connections
    while True:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last is not None:
            headers["Last-Event-ID"] = str(last)
        if use_key:
            headers["Authorization"] = f"Bearer {api_key}"
        pause_ms: Optional[int] = None  # set here only by a 401 fallback or a Retry-After
        reason: str
        cause: Optional[BaseException] = None
        conn: Optional[http.client.HTTPConnection] = None
        try:
            conn, resp = _open("GET", url, headers, None, timeout)
            if resp.status == 200:
                parser.start()
                while True:
                    chunk = resp.read1(65536)
                    if not chunk:
                        break
                    for ev in parser.feed(chunk):
                        if ev.type == "token":
                            seq = _seq_of(ev)
                            if last is not None and seq <= last:
                                continue  # already seen: a resume never repeats a token
                            last = seq
                            failures = 0
                            yield seq, json.loads(ev.data)
                            yielded += 1
                            if drop_after is not None and not dropped and yielded >= drop_after:
                                dropped = True
                                raise _Dropped(f"dropped on purpose after {yielded} token(s)")
                        elif ev.type == "done":
                            return
                        elif ev.type == "error":
                            raise _terminal_error(job_id, ev.data)
                reason = "the stream ended without a terminal event"
            elif resp.status == 204:
                # The resume point was the terminal event's own id: the end was delivered before.
                resp.read()
                _end_as_snapshot(url, job_id, api_key)
                return
            else:
                text = resp.read().decode("utf-8", "replace")
                err = _api_error(resp.status, resp.headers, text)
                if resp.status == 401 and has_token and api_key is not None and not use_key:
                    use_key = True  # the signed URL expired: the API key still works
                    pause_ms = 0
                elif resp.status in TRANSIENT:
                    if err.retry_after is not None:
                        pause_ms = int(min(err.retry_after, MAX_RETRY_AFTER_S) * 1000)
                else:
                    raise err
                reason = f"the server answered {resp.status} {err.code}"
                cause = err
        except _Dropped as e:
            reason = str(e)
        except (OSError, http.client.HTTPException) as e:
            # Refused, reset, timed out (no ping for `timeout` s), or cut mid-chunk: resume.
            reason = f"the connection failed ({type(e).__name__}: {e})"
            cause = e
        finally:
            if conn is not None:
                _close_hard(conn)
        if pause_ms is None:
            pause_ms = reconnect_ms if reconnect_ms is not None else parser.retry_ms
        failures += 1
        if failures > max_retries:
            raise StreamGaveUp(
                f"job {job_id}: gave up after {max_retries} reconnect attempt(s) without a new token; "
                f"last seq seen: {last}; last failure: {reason}",
                last,
                cause,
            )
        if on_reconnect is not None:
            on_reconnect(last, failures, reason)
        if not isinstance(cause, ApiError) or cause.retry_after is None:
            # Back off while nothing gets through (a server restarting): 1x, 2x, 4x... up to 30 s.
            pause_ms = min(pause_ms * 2 ** (failures - 1), MAX_BACKOFF_MS) if pause_ms > 0 else 0
        if pause_ms > 0:
            time.sleep(pause_ms / 1000)


class _Dropped(Exception):
    """Raised inside the read loop to close the connection on purpose (``drop_after``)."""


def _seq_of(ev: "_Event") -> int:
    if ev.id is None or not ev.id.isdigit():
        raise JobClientError(f"a token event without a numeric id: {ev.id!r}")
    return int(ev.id)


def _terminal_error(job_id: str, data: str) -> JobEnded:
    try:
        body = json.loads(data)
    except ValueError:
        body = {"state": "failed", "error": data}
    state = body.get("state", "failed")
    error = body.get("error", state)
    return JobCancelled(job_id, state, error) if state == "cancelled" else JobFailed(job_id, state, error)


def _end_as_snapshot(stream_url: str, job_id: str, api_key: Optional[str]) -> None:
    """After a 204: returns if the job completed, raises JobFailed / JobCancelled as its snapshot says."""
    parts = urlsplit(stream_url)
    path = parts.path[: -len("/stream")] if parts.path.endswith("/stream") else parts.path
    headers = {"Accept": "application/json"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    status, resp_headers, text = _request("GET", f"{parts.scheme}://{parts.netloc}{path}", headers, None, 30.0)
    if status != 200:
        raise _api_error(status, resp_headers, text)
    snap = json.loads(text)
    state = snap.get("state")
    if state == "completed":
        return
    if state == "cancelled":
        raise JobCancelled(job_id, state, snap.get("error", state))
    raise JobFailed(job_id, str(state), snap.get("error", str(state)))


# ---------------------------------------------------------------------------------------------------------
# Server-Sent Events parsing (the WHATWG rules the wire relies on)


class _Event:
    __slots__ = ("type", "data", "id")

    def __init__(self, type_: str, data: str, id_: Optional[str]):
        self.type = type_
        self.data = data
        self.id = id_


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class _SseParser:
    """Incremental SSE parser: lines end at CRLF, LF or CR; a blank line dispatches the event."""

    def __init__(self) -> None:
        self.retry_ms = DEFAULT_RECONNECT_MS
        self.last_id: Optional[str] = None
        self.start()

    def start(self) -> None:
        """Forgets any partial event: a new connection starts clean (its `retry:` hint and id are kept)."""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buf = ""
        self._first = True
        self._type = ""
        self._data: List[str] = []

    def feed(self, chunk: bytes) -> List[_Event]:
        text = self._buf + self._decoder.decode(chunk)
        if self._first and text:
            self._first = False
            if text.startswith("\ufeff"):
                text = text[1:]
        events: List[_Event] = []
        pos = 0
        while True:
            m = _LINE_BREAK.search(text, pos)
            # A CR at the very end may be the first half of a CRLF: wait for the next chunk.
            if m is None or (m.group() == "\r" and m.end() == len(text)):
                break
            ev = self._line(text[pos : m.start()])
            pos = m.end()
            if ev is not None:
                events.append(ev)
        self._buf = text[pos:]
        return events

    def _line(self, line: str) -> Optional[_Event]:
        if line == "":
            if not self._data:
                self._type = ""
                return None
            ev = _Event(self._type or "message", "\n".join(self._data), self.last_id)
            self._type = ""
            self._data = []
            return ev
        if line.startswith(":"):
            return None  # a comment, e.g. the `: ping` heartbeat
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._type = value
        elif field == "id":
            if "\0" not in value:
                self.last_id = value
        elif field == "retry":
            if value.isascii() and value.isdigit():
                self.retry_ms = int(value)
        return None


# ---------------------------------------------------------------------------------------------------------
# HTTP plumbing (http.client: a stream needs its socket, to read as bytes arrive and to drop it)


def _connection(url: str, timeout: float) -> Tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JobClientError(f"not an http(s) URL: {url!r}")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname, parts.port, timeout=timeout), target


def _open(
    method: str, url: str, headers: Dict[str, str], body: Optional[bytes], timeout: float
) -> Tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn, target = _connection(url, timeout)
    try:
        conn.request(method, target, body=body, headers=headers)
        return conn, conn.getresponse()
    except BaseException:
        conn.close()
        raise


def _request(
    method: str, url: str, headers: Dict[str, str], body: Optional[bytes], timeout: float
) -> Tuple[int, Any, str]:
    conn, resp = _open(method, url, headers, body, timeout)
    try:
        return resp.status, resp.headers, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _close_hard(conn: http.client.HTTPConnection) -> None:
    """Closes at once: the server sees the client go (a stream is not read to its end first)."""
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    conn.close()


def _api_error(status: int, headers: Any, text: str) -> ApiError:
    code, message = "HTTP_ERROR", f"the server answered {status}"
    try:
        err = json.loads(text)["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        pass
    retry_after: Optional[float] = None
    raw = headers.get("Retry-After") if headers is not None else None
    if raw is not None and raw.strip().isdigit():
        retry_after = float(raw.strip())
    return ApiError(status, code, message, retry_after)


def _job_id_of(url: str) -> str:
    parts = [p for p in urlsplit(url).path.split("/") if p]
    return parts[-2] if len(parts) >= 2 and parts[-1] == "stream" else (parts[-1] if parts else "?")


# ---------------------------------------------------------------------------------------------------------
# command line


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        description="Submit a prompt to a job-registry server and print its tokens as they stream."
    )
    ap.add_argument("--url", default="http://127.0.0.1:8080", help="the server (default %(default)s)")
    ap.add_argument("--prompt", required=True, help="the simulated model emits its words, cycling")
    ap.add_argument("--max-tokens", type=int, help="tokens to emit (default: the number of words)")
    ap.add_argument("--delay-ms", type=int, help="pause between tokens, in ms")
    ap.add_argument("--fail-after", type=int, help="make the job fail after this many tokens")
    ap.add_argument(
        "--api-key", default=os.environ.get("JOB_API_KEY"), help="Bearer key (default: $JOB_API_KEY)"
    )
    ap.add_argument("--base-path", default=DEFAULT_BASE_PATH, help="the POST route (default %(default)s)")
    ap.add_argument("--after", type=int, help="start after this seq")
    ap.add_argument("--drop-after", type=int, help="close the connection once after N tokens, then resume")
    ap.add_argument("--reconnect-ms", type=int, help="wait before a reconnect (default: the server's retry:)")
    ap.add_argument("--max-retries", type=int, default=5, help="reconnects without progress (default 5)")
    ap.add_argument("--json", action="store_true", help="print one JSON object per line")
    args = ap.parse_args(argv)

    def note(last: Optional[int], attempt: int, reason: str) -> None:
        resume = "from the start" if last is None else f"with Last-Event-ID: {last}"
        print(f"job_client: {reason}; resuming {resume} (attempt {attempt})", file=sys.stderr, flush=True)

    def emit(obj: Dict[str, Any], text: Optional[str] = None) -> None:
        """One JSON line with --json; else `text` (tokens, space-separated) when there is one."""
        if args.json:
            sys.stdout.write(json.dumps(obj) + "\n")
        elif text is not None:
            sys.stdout.write(text)
        sys.stdout.flush()

    payload: Dict[str, Any] = {"prompt": args.prompt}
    for key in ("max_tokens", "delay_ms", "fail_after"):
        if getattr(args, key) is not None:
            payload[key] = getattr(args, key)
    printed = 0
    try:
        job_id, sse_url = submit(args.url, payload, args.api_key, base_path=args.base_path)
        emit({"job_id": job_id, "sse_url": sse_url})
        print(f"job_client: job {job_id}", file=sys.stderr, flush=True)
        for seq, token in stream(
            args.url,
            sse_url,
            args.after,
            args.api_key,
            max_retries=args.max_retries,
            reconnect_ms=args.reconnect_ms,
            drop_after=args.drop_after,
            on_reconnect=note,
        ):
            text = token if isinstance(token, str) else json.dumps(token)
            emit({"seq": seq, "token": token}, (" " if printed else "") + text)
            printed += 1
        emit({"end": "done", "state": "completed"}, "\n" if printed else None)
        print("job_client: done (completed)", file=sys.stderr)
        return 0
    except JobEnded as e:
        emit({"end": "error", "state": e.state, "error": e.error}, "\n" if printed else None)
        print(f"job_client: {e.state}: {e.error}", file=sys.stderr)
        return 4 if isinstance(e, JobCancelled) else 3
    except JobClientError as e:
        print(f"job_client: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"job_client: cannot reach {args.url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
