"""A Snowflake stand-in for the integration tests: fakesnow's server, bridged to our Rust client.

The production loader (host/src/load/snowflake.rs) talks to Snowflake through the Rust crate
`snowflake-connector-rs`. The tests point it at `fakesnow` (PyPI), which answers Snowflake's REST
protocol and runs the SQL on DuckDB. fakesnow is written for, and tested with, the Python
connector, and the Rust client disagrees with it in a few places. This module wraps fakesnow's
ASGI app (`fakesnow.server.app`) and rewrites exactly those places, nothing else:

1. Login without SESSION_PARAMETERS. fakesnow reads `data.SESSION_PARAMETERS` of the login body
   unconditionally; the Rust client only sends it when session parameters are configured, so a
   plain login fails inside fakesnow with a KeyError (HTTP 500). The bridge adds an empty object.

2. Arrow results. fakesnow answers every statement that is not DML with
   `queryResultFormat: "arrow"` and a base64 Arrow IPC stream in `rowsetBase64`; the Rust client
   only reads JSON results and refuses the rest ("unsupported result format: arrow"). The bridge
   decodes the Arrow stream and answers as Snowflake does in JSON: `rowset` is a list of rows,
   each cell a string or null, encoded the way Snowflake encodes JSON results and the client
   decodes them (see `_cell_encoder`), with `returned` and `total` row counts.

3. Errors without a query id. fakesnow reports a failed statement as
   `{"data": {"errorCode", "sqlState"}, "code", "message", "success": false}`. Snowflake also puts
   the statement's `queryId` into `data`, and the Rust client requires it whenever `data` is
   present, so it would report a protocol error ("missing required field ... data.queryId")
   instead of Snowflake's message. The bridge adds a query id (and copies `sqlState` to the top
   level, where the Rust client reads it), and drops the "<code> (<state>): " prefix that the
   Python connector's error class puts before the message.

4. Failures fakesnow has no Snowflake error for. A DuckDB error fakesnow does not translate (a
   NOT NULL violation, a missing file, a transaction conflict) or SQL it cannot run comes back as
   HTTP 500, which the Rust client reports as a network failure, so a loader would take a bad
   statement for an unreachable warehouse. Snowflake answers every failed statement with HTTP 200
   and `success: false`; so does the bridge: a NOT NULL violation as Snowflake's 100072 "NULL
   result in a non-nullable column", anything else as Snowflake's internal error 000603 with the
   DuckDB exception in the message (the traceback stays in the log).

5. Passwords. fakesnow accepts any credentials. With `--password`, the bridge checks the login's
   PASSWORD and answers a wrong (or missing) one as Snowflake does: HTTP 200 with
   `{"data": {...}, "code": "390100", "message": "Incorrect username or password was
   specified.", "success": false}`, so a bad-credentials test checks something real.

6. COPY INTO a table of ten or more columns. fakesnow selects the file's columns as `column0`,
   `column1`, ... but DuckDB names the columns of a header-less CSV with zero padding once there
   are ten or more (`column00` ... `column29`), so such a COPY fails with "Referenced column
   column0 not found". The bridge patches fakesnow's COPY planner to use DuckDB's names.

It lives in the test harness, never in production code: the production loader must speak to real
Snowflake exactly as Snowflake expects, and every rewrite here makes fakesnow look more like
Snowflake, never the other way round. If a test fails only because fakesnow differs from
Snowflake, fix it here (or upstream in fakesnow), not by weakening the loader.

Left as fakesnow does it (write SQL that both accept): temporary tables cannot have a qualified
name; an error inside BEGIN ... COMMIT aborts the whole transaction until ROLLBACK (Snowflake
only fails the statement); DDL inside a transaction does not commit it; a quoted empty CSV field
loads as NULL; CURRENT_TIMESTAMP is in UTC whatever the session's TIMEZONE.

Usage (the Rust launcher in tests/support/src/snowflake.rs does this):

    python bridge.py --port PORT [--password PW] [--db-path DIR] [--watch-stdin]

It serves on 127.0.0.1 (`--port 0` picks a free port) and prints `listening on 127.0.0.1:PORT`
on stdout once it accepts connections. Log lines (fakesnow's SQL, requests) go to stderr. All
sessions share one set of databases, in memory unless `--db-path` keeps them as DIR/<NAME>.db.
With `--watch-stdin` it exits when its stdin closes, so it never outlives the test process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextvars
import datetime
import decimal
import gzip
import hmac
import json
import logging
import math
import os
import socket
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import duckdb
import pyarrow as pa
import uvicorn

# Importing fakesnow.server creates its shared in-memory instance; --db-path replaces it below.
import fakesnow.copy_into
import fakesnow.server
from fakesnow.instance import FakeSnow
from sqlglot import exp

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

LOGIN_PATH = "/session/v1/login-request"
QUERY_PATH = "/queries/v1/query-request"

# What Snowflake answers to a wrong user name or password (HTTP 200, success false).
BAD_CREDENTIALS_CODE = "390100"
BAD_CREDENTIALS_MESSAGE = "Incorrect username or password was specified."

EPOCH_DATE = datetime.date(1970, 1, 1)
NANOS_PER_SECOND = 1_000_000_000


_fakesnow_copy_inserts = fakesnow.copy_into._inserts


def _copy_inserts_with_duckdb_column_names(*args: Any, **kwargs: Any) -> Any:
    """fakesnow's COPY planner, with the CSV's columns named as DuckDB names them (gap 6)."""
    inserts = _fakesnow_copy_inserts(*args, **kwargs)
    for insert in inserts:
        select = insert.expression
        positional = [
            c
            for c in getattr(select, "expressions", [])
            if isinstance(c, exp.Column) and c.name.startswith("column") and c.name[6:].isdigit()
        ]
        if len(positional) >= 10:
            width = len(str(len(positional) - 1))
            for column in positional:
                column.this.set("this", f"column{int(column.name[6:]):0{width}d}")
    return inserts


fakesnow.copy_into._inserts = _copy_inserts_with_duckdb_column_names


class BridgeError(Exception):
    """A response the bridge cannot translate; reported to the client as a server error."""


# ---------------------------------------------------------------------------------------------
# Arrow -> Snowflake JSON cells
# ---------------------------------------------------------------------------------------------


def _scaled_decimal(nanos: int, scale: int) -> str:
    """`nanos` (an integer count of nanoseconds) as seconds with `scale` fraction digits.

    Snowflake's JSON encoding of TIME and TIMESTAMP_* values: "1700000000.123456789" for scale 9,
    a leading "-" before 1970 (the whole value is negative, not just the seconds).
    """
    sign = "-" if nanos < 0 else ""
    seconds, fraction = divmod(abs(nanos), NANOS_PER_SECOND)
    if scale <= 0:
        return f"{sign}{seconds}"
    fraction //= 10 ** (9 - scale)
    return f"{sign}{seconds}.{fraction:0{scale}d}"


def _timestamp_nanos(value: Any) -> int:
    """Nanoseconds since the epoch of a timestamp cell as fakesnow encodes it in Arrow.

    fakesnow sends Snowflake's Arrow layout: a struct of `epoch` (whole seconds, floored) and
    `fraction` (nanoseconds, never negative), plus `timezone` for TIMESTAMP_TZ.
    """
    if isinstance(value, dict):
        return int(value["epoch"]) * NANOS_PER_SECOND + int(value["fraction"])
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        delta = value - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
        return (delta.days * 86_400 + delta.seconds) * NANOS_PER_SECOND + delta.microseconds * 1000
    raise BridgeError(f"unexpected timestamp cell {value!r}")


def _encode_fixed(value: Any) -> str:
    # NUMBER(p, s): the decimal digits, with exactly s fraction digits and never an exponent.
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    return str(value)


def _encode_real(value: Any) -> str:
    # FLOAT: Python's shortest round-trip form ("0.1", "1e+100"); the client parses it as f64.
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    return str(value)


def _encode_boolean(value: Any) -> str:
    # BOOLEAN: "1" or "0".
    return "1" if value else "0"


def _encode_date(value: Any) -> str:
    # DATE: days since 1970-01-01.
    if isinstance(value, datetime.date):
        return str((value - EPOCH_DATE).days)
    raise BridgeError(f"unexpected date cell {value!r}")


def _encode_variant(value: Any) -> str:
    # VARIANT, OBJECT, ARRAY: the JSON text.
    return value if isinstance(value, str) else json.dumps(value)


def _encode_binary(value: Any) -> str:
    # BINARY: upper-case hex.
    return value.hex().upper() if isinstance(value, (bytes, bytearray)) else str(value)


def _cell_encoder(column: dict[str, Any]) -> Callable[[Any], str]:
    """How to write one column's non-null cells, from its entry in the response's `rowtype`.

    The encodings are Snowflake's JSON result encodings, which snowflake-connector-rs decodes
    (src/result_table/decode.rs): integers and decimals as decimal strings, floats parsed as f64,
    booleans "1"/"0", dates as days since the epoch, times and timestamps as seconds since
    midnight/the epoch with `scale` fraction digits (TIMESTAMP_TZ followed by a space and the
    offset in minutes plus 1440), semi-structured values as JSON text, binary as hex.
    """
    kind = str(column.get("type", "")).lower()
    scale = column.get("scale")
    time_scale = 9 if scale is None else int(scale)

    if kind == "fixed":
        return _encode_fixed
    if kind == "real":
        return _encode_real
    if kind == "boolean":
        return _encode_boolean
    if kind == "date":
        return _encode_date
    if kind == "time":
        return lambda value: _scaled_decimal(int(value), time_scale)
    if kind in ("timestamp_ntz", "timestamp_ltz"):
        return lambda value: _scaled_decimal(_timestamp_nanos(value), time_scale)
    if kind == "timestamp_tz":

        def encode_tz(value: Any) -> str:
            # fakesnow only produces UTC (index 1440) but carries the index through anyway.
            index = value.get("timezone", 1440) if isinstance(value, dict) else 1440
            return f"{_scaled_decimal(_timestamp_nanos(value), time_scale)} {index}"

        return encode_tz
    if kind in ("variant", "object", "array"):
        return _encode_variant
    if kind == "binary":
        return _encode_binary
    return str


def arrow_to_json_rowset(
    rowset_base64: str, rowtype: list[dict[str, Any]]
) -> list[list[str | None]]:
    """Decode fakesnow's base64 Arrow IPC stream into Snowflake JSON rows."""
    if not rowset_base64:
        return []
    table = pa.ipc.open_stream(base64.b64decode(rowset_base64)).read_all()
    if table.num_columns != len(rowtype):
        raise BridgeError(
            f"arrow result has {table.num_columns} columns but rowtype {len(rowtype)}"
        )
    encoders = [_cell_encoder(column) for column in rowtype]
    columns = [
        [None if _is_null(value) else encode(value) for value in column.to_pylist()]
        for column, encode in zip(table.columns, encoders, strict=True)
    ]
    return [list(row) for row in zip(*columns, strict=True)]


def _is_null(value: Any) -> bool:
    # fakesnow builds timestamp structs from their parts without the null mask, so a NULL
    # timestamp arrives as a struct whose parts are null rather than as a null struct.
    return value is None or (isinstance(value, dict) and value.get("epoch") is None)


def snowflake_json_result(body: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a query-request response body of fakesnow into what Snowflake would send."""
    data = body.get("data")
    if not isinstance(data, dict):
        return body

    if body.get("success") is False:
        # Snowflake names the failed statement; the Rust client requires data.queryId.
        data.setdefault("queryId", str(uuid.uuid4()))
        if "sqlState" in data:
            body.setdefault("sqlState", data["sqlState"])
        # fakesnow raises the Python connector's error class, which prefixes its message with
        # "<code> (<sql state>): "; Snowflake's message does not carry that prefix.
        prefix = f"{body.get('code')} ({data.get('sqlState')}): "
        if isinstance(body.get("message"), str) and body["message"].startswith(prefix):
            body["message"] = body["message"][len(prefix) :]
        return body

    if data.get("queryResultFormat") == "arrow":
        rowtype = data.get("rowtype") or []
        rows = arrow_to_json_rowset(data.pop("rowsetBase64", "") or "", rowtype)
        data["queryResultFormat"] = "json"
        data["rowset"] = rows
        data["returned"] = len(rows)
        data["total"] = len(rows)
    elif data.get("queryResultFormat") == "json" and isinstance(data.get("rowset"), list):
        data.setdefault("returned", len(data["rowset"]))
        data.setdefault("total", len(data["rowset"]))
    return body


# ---------------------------------------------------------------------------------------------
# Statements fakesnow fails on without a Snowflake error
# ---------------------------------------------------------------------------------------------

# fakesnow's code for "an exception it has no Snowflake error for" (sent with HTTP 500).
FAKESNOW_UNHANDLED_CODE = "261000"

# The exceptions fakesnow logs while answering the current request (set per request; the log
# call runs in the request's own task, so the context variable finds the right list).
_logged_exceptions: contextvars.ContextVar[list[BaseException] | None] = contextvars.ContextVar(
    "fakesnow_bridge_logged_exceptions", default=None
)


class _KeepLoggedExceptions(logging.Filter):
    """Keeps the exception fakesnow logs with its "Unhandled exception" answer.

    A filter on fakesnow's logger rather than a handler: that logger shares its handler list
    with uvicorn's, which uvicorn's logging setup replaces.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        kept = _logged_exceptions.get()
        if kept is not None and record.exc_info and record.exc_info[1] is not None:
            kept.append(record.exc_info[1])
        return True


logging.getLogger("fakesnow.server").addFilter(_KeepLoggedExceptions())


def statement_error(exc: BaseException | None, fallback: str) -> tuple[str, str, str]:
    """(code, SQL state, message) of Snowflake's answer to a statement fakesnow failed to run.

    A NOT NULL violation is what Snowflake reports as 100072. Anything else (a DuckDB error
    fakesnow does not translate, or SQL fakesnow cannot run) is reported as Snowflake's internal
    error 000603 naming the DuckDB exception, so the test sees a failed statement with the real
    cause rather than an HTTP failure.
    """
    text = str(exc).strip() if exc is not None else fallback
    if isinstance(exc, duckdb.ConstraintException) and "NOT NULL constraint failed" in text:
        return "100072", "22000", "NULL result in a non-nullable column"
    name = type(exc).__name__ if exc is not None else "unknown error"
    message = f"SQL execution internal error: fakesnow could not run it: {name}: {text}"
    return "000603", "XX000", message


# ---------------------------------------------------------------------------------------------
# The ASGI wrapper
# ---------------------------------------------------------------------------------------------


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields `body` once, then defers to the real one (for disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


Headers = list[tuple[bytes, bytes]]


def _with_body_headers(headers: Headers, length: int) -> Headers:
    """`headers` describing a new plain (not gzip) body of `length` bytes."""
    replaced = (b"content-length", b"content-encoding")
    kept = [(k, v) for k, v in headers if k.lower() not in replaced]
    return [*kept, (b"content-length", str(length).encode())]


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw, "more_body": False})


class Bridge:
    """ASGI middleware around fakesnow's app; see the module docstring for what it changes."""

    def __init__(self, inner: App, password: str | None) -> None:
        self.inner = inner
        self.password = password

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST":
            if scope["path"] == LOGIN_PATH:
                return await self.login(scope, receive, send)
            if scope["path"] == QUERY_PATH:
                return await self.query(scope, receive, send)
        return await self.inner(scope, receive, send)

    async def login(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await _read_body(receive)
        try:
            if _header(scope, b"content-encoding") == b"gzip":
                raw = gzip.decompress(raw)
            body = json.loads(raw)
            data = body["data"]
            if not isinstance(data, dict):
                raise TypeError("data is not an object")
        except (OSError, ValueError, KeyError, TypeError):
            # Not a login we understand: let fakesnow answer it as it would.
            scope = {**scope, "headers": _with_body_headers(scope.get("headers", []), len(raw))}
            return await self.inner(scope, _replay(raw, receive), send)

        if self.password is not None and not self._password_matches(data.get("PASSWORD")):
            return await _send_json(
                send,
                200,
                {
                    "data": {"nextAction": None, "authnMethod": "USERNAME_PASSWORD"},
                    "code": BAD_CREDENTIALS_CODE,
                    "message": BAD_CREDENTIALS_MESSAGE,
                    "success": False,
                    "headers": None,
                },
            )

        # Gap 1: fakesnow requires SESSION_PARAMETERS; the Rust client omits it when empty.
        if not isinstance(data.get("SESSION_PARAMETERS"), dict):
            data["SESSION_PARAMETERS"] = {}
        raw = json.dumps(body).encode()
        scope = {**scope, "headers": _with_body_headers(scope.get("headers", []), len(raw))}
        return await self.inner(scope, _replay(raw, receive), send)

    def _password_matches(self, given: Any) -> bool:
        assert self.password is not None
        return isinstance(given, str) and hmac.compare_digest(
            given.encode(), self.password.encode()
        )

    async def query(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Buffer fakesnow's whole response, rewrite it, then send it on.
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        logged: list[BaseException] = []
        token = _logged_exceptions.set(logged)
        try:
            await self.inner(scope, receive, capture)
        finally:
            _logged_exceptions.reset(token)
        raw = b"".join(chunks)
        headers = list(start.get("headers", []))
        encoding = next((v for k, v in headers if k.lower() == b"content-encoding"), None)
        status = start.get("status", 500)

        if encoding is None:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            unhandled = status == 500 and isinstance(body, dict)
            if unhandled and body.get("code") == FAKESNOW_UNHANDLED_CODE:
                # Gap 4: Snowflake answers a failed statement with HTTP 200 and success false;
                # fakesnow answers the failures it has no Snowflake error for with HTTP 500,
                # which the client reports as a network failure.
                code, sql_state, message = statement_error(
                    logged[-1] if logged else None, str(body.get("message"))
                )
                status = 200
                body = {
                    "data": {"errorCode": code, "sqlState": sql_state},
                    "code": code,
                    "message": message,
                    "success": False,
                }
            if isinstance(body, dict):
                try:
                    raw = json.dumps(snowflake_json_result(body)).encode()
                except Exception as e:  # noqa: BLE001 - any failure here is the bridge's own bug
                    message = f"fakesnow bridge cannot translate: {type(e).__name__}: {e}"
                    print(message, file=sys.stderr, flush=True)
                    return await _send_json(
                        send,
                        500,
                        {"data": None, "code": "261000", "message": message, "success": False},
                    )
                headers = _with_body_headers(headers, len(raw))

        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": raw, "more_body": False})


# ---------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--port", type=int, required=True, help="port on 127.0.0.1; 0 picks a free one"
    )
    parser.add_argument("--password", help="the only password a login may use (default: any)")
    parser.add_argument(
        "--db-path",
        metavar="DIR",
        help="keep each database as DIR/<NAME>.db (created if missing) instead of in memory",
    )
    parser.add_argument(
        "--watch-stdin",
        action="store_true",
        help="exit when stdin closes (the launcher keeps it open, so the bridge dies with it)",
    )
    parser.add_argument("--log-level", default="info", help="uvicorn and fakesnow log level")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    if args.db_path:
        os.makedirs(args.db_path, exist_ok=True)
        # One instance for every session, as fakesnow's default in-memory one is, so stages and
        # load history are shared between sessions; its databases are files in db_path.
        fakesnow.server.shared_fs = FakeSnow(db_path=args.db_path)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    host, port = sock.getsockname()[:2]

    config = uvicorn.Config(
        Bridge(fakesnow.server.app, args.password),
        log_level=args.log_level,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))

    while not server.started:
        if serving.done():
            await serving
            print("fakesnow bridge failed to start", file=sys.stderr, flush=True)
            return 1
        await asyncio.sleep(0.02)

    if args.watch_stdin:
        loop = asyncio.get_running_loop()

        def watch() -> None:
            # Blocks until the launcher exits or closes our stdin, whichever comes first.
            while sys.stdin.buffer.read(4096):
                pass
            loop.call_soon_threadsafe(setattr, server, "should_exit", True)

        threading.Thread(target=watch, name="stdin watch", daemon=True).start()

    # The launcher waits for this exact line.
    print(f"listening on {host}:{port}", flush=True)
    await serving
    return 0


def main(argv: list[str]) -> int:
    return asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
