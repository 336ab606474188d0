"""`mr2probe serve`: the REST API and the dashboard on uvicorn."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..config import DEFAULT_PORT, MAX_PORT, Settings

HELP = "Serve the REST API (/api, /docs) and the dashboard (/) with uvicorn."


def port_number(text: object) -> int:
    """``--port``'s value, checked once parsed by the settings (0..MAX_PORT; 0: any free port): a ValueError of one
    line naming --port, the value and the range (as an argparse type, its refusal came after argparse's usage)."""
    return build_settings(port=text).port


class _Once(argparse.Action):
    """A flag that takes one value: given twice, a refusal naming both (``--data-root A --data-root B`` served B
    alone, and every registration under A was a 403 'outside the data root'; a first-user round)."""

    def __call__(self, parser, namespace, values, option_string=None):
        before = getattr(namespace, self.dest)
        if before is not None and before != values:
            raise argparse.ArgumentError(self, f"given twice ({before} and {values}): the server takes one")
        setattr(namespace, self.dest, values)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="listen address (default 127.0.0.1 or MR2PROBE_HOST); "
                        "a non-loopback address needs a token")
    parser.add_argument("--port", default=None,
                        help=f"port, 0..{MAX_PORT} (default {DEFAULT_PORT} or MR2PROBE_PORT)")
    parser.add_argument("--data-dir", type=Path, default=None, action=_Once,
                        help="state directory: database, uploads, caches, runs (default ./.mr2probe or MR2PROBE_DATA_DIR)")
    parser.add_argument("--data-root", type=Path, default=None, action=_Once,
                        help="server-side directories under this root may be registered (MR2PROBE_DATA_ROOT)")
    parser.add_argument("--token", default=None, help="API bearer token (prefer MR2PROBE_API_TOKEN: "
                        "command lines are visible to other users)")
    # its text (as --port's) checked with the settings, in their words (argparse's type=int said "invalid int
    # value: 'abc'" with its usage, not what the setting accepts)
    parser.add_argument("--cpu-jobs", default=None, help="CPU jobs run at the same time (MR2PROBE_CPU_JOBS)")


# The flag that sets each setting, for a refusal to name what the user typed (the environment variable is the
# setting's name upper-cased after MR2PROBE_)
_FLAGS = {"host": "--host", "port": "--port", "data_dir": "--data-dir", "api_token": "--token",
          "data_root": "--data-root", "cpu_jobs": "--cpu-jobs", "threads": "--threads"}


def settings_from_args(args: argparse.Namespace, **extra):
    """Settings from the environment, with the flags that were given taking precedence (:func:`build_settings`)."""
    flags = {"host": args.host, "port": args.port, "data_dir": args.data_dir, "api_token": args.token,
             "data_root": getattr(args, "data_root", None), "cpu_jobs": getattr(args, "cpu_jobs", None),
             "threads": getattr(args, "threads", None), **extra}
    return build_settings(**{k: v for k, v in flags.items() if v is not None})


def build_settings(**values):
    """``Settings(**values)`` over the environment; a value refused is a ValueError of one line naming the setting
    as it was given (its flag, or its environment variable), the value and what it accepts (pydantic's report of
    four lines named the field alone; a README round)."""
    from pydantic import ValidationError

    try:
        return Settings(**values)
    except ValidationError as exc:
        schema = Settings.model_json_schema()
        refusals = [_refusal(error, values, schema).removesuffix(".") for error in exc.errors(include_url=False)]
        raise ValueError("; ".join(refusals)) from None


def _variable(field: str) -> str:
    """The environment variable of ``field``: as the environment writes it where set (it is read
    case-insensitively), else ``MR2PROBE_`` and the field's name in capitals."""
    name = f"MR2PROBE_{field.upper()}"
    return next((key for key in os.environ if key.upper() == name), name)


def _given(field: str, values: dict) -> tuple[str, object]:
    """How ``field`` was set: its flag and value where a flag set it, else its environment variable and text."""
    if field in values:
        return _FLAGS.get(field, field), values[field]
    return _variable(field), os.environ.get(_variable(field))


def given_as(field: str, value: object) -> str:
    """What set a setting's ``value`` (a path, resolved, or a host), for a refusal to name it: its environment
    variable where that reads as the value, its flag where the value is another, both where neither was given (the
    default: either chooses another)."""
    def read(text: object) -> object:
        return Path(str(text)).expanduser().resolve() if isinstance(value, Path) else text

    variable, flag = _variable(field), _FLAGS.get(field)
    if variable in os.environ and read(os.environ[variable]) == value:
        return variable
    default = Settings.model_fields[field].default
    if flag is None or (variable not in os.environ and default is not None and read(default) == value):
        return ", ".join(filter(None, (flag, variable)))
    return flag


def _refusal(error: dict, values: dict, schema: dict) -> str:
    """One pydantic error of the settings in the words of app.field_errors: the setting as given, the value and
    what it accepts ("MR2PROBE_CPU_JOBS must be an integer in [1, 64], got 'abc'."); a setting's own check (the
    token's, which repeats no value) after its name."""
    from ..field_errors import REWORDED, text_refusal

    field = str(error["loc"][0]) if error.get("loc") else ""
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if field not in schema.get("properties", {}):
        return f"settings: {message}"
    name, value = _given(field, values)
    reworded = text_refusal(name, value, schema["properties"][field], {"components": {"schemas": {}}}) \
        if error.get("type") in REWORDED else None
    return reworded or f"{name}: {message}"


def check_start(settings) -> None:
    """Refuse, in one line and before anything starts, what would make the server useless or unsafe: listening on
    a non-loopback address without an API token, a data root that is not a folder (every registration would then
    be refused), a data directory that is a file, a device this host lacks (MR2PROBE_DEVICE=cuda:99 started a
    server whose every job failed; an attack round), a host that does not resolve, an address already in use
    (uvicorn said so in its own log format and exited 3) and a data directory another server runs the jobs of."""
    from probe.devices import resolve_device

    from ..config import is_loopback
    from ..datadir import lock_data_dir

    if not is_loopback(settings.host) and not settings.token:
        raise ValueError(f"refusing to listen on {settings.host!r} without an API token: set MR2PROBE_API_TOKEN "
                         "(or --token), or use --host 127.0.0.1")
    if settings.data_root is not None and not settings.data_root.is_dir():
        named = given_as("data_root", settings.data_root)
        raise ValueError(f"the data root {settings.data_root} is not a folder ({named}): "
                         "data sets are registered from under it")
    check_data_dir(settings.data_dir)
    try:
        resolve_device(settings.device)
    except ValueError as exc:
        raise ValueError(f"{exc} ({_variable('device')})") from None
    _check_address(settings.host, settings.port)
    lock_data_dir(settings.data_dir).close()  # DataDirBusy now, not once the server (or the demo's job) has begun


def check_data_dir(data_dir: Path) -> None:
    """A data directory that is a file, or lies under one, refused by name: creating it said only '[Errno 17] File
    exists' (found by the third attack round); one where nothing can be written ('/proc/x', a read-only folder)
    said only '[Errno 2] No such file or directory: ...'."""
    from . import file_in_the_way, unwritable

    named = given_as("data_dir", data_dir)
    existing = file_in_the_way(data_dir)
    if existing is not None:
        where = "is a file" if existing == data_dir else f"is under {existing}, a file"
        raise ValueError(f"the data dir {data_dir} {where}, not a folder ({named}): choose a "
                         "folder for the server's state")
    problem = unwritable(data_dir)
    if problem is not None:
        raise ValueError(f"the data dir {data_dir} cannot be written ({problem}; {named}): "
                         "choose a folder for the server's state")


def _check_address(host: str, port: int) -> None:
    """``host`` resolves and ``host:port`` is free (port 0: any free port, nothing to check)."""
    import socket

    try:
        family = socket.getaddrinfo(host, port or None, type=socket.SOCK_STREAM)[0][0]
    except OSError as exc:  # socket.gaierror: a host name no resolver knows; it is not the port's fault
        raise ValueError(f"cannot resolve the host {host!r} ({given_as('host', host)}): {exc.strerror or exc}; give "
                         "an IP address or a known host name") from None
    if not port:
        return
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host, port))
    except OSError as exc:
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (another server? choose another "
                         "--port)") from None


def serve(app, settings) -> None:
    """Run ``app`` on uvicorn until Ctrl-C (the app's lifespan starts and stops the job worker); the caller has
    passed :func:`check_start` before it built the app.

    A data directory that another server runs is refused here, in one line (:class:`app.datadir.DataDirBusy`), before
    uvicorn would print the lifespan's trace; the worker takes the lock for itself at start-up."""
    import uvicorn

    from ..datadir import lock_data_dir

    lock_data_dir(settings.data_dir).close()
    uvicorn.run(app, **uvicorn_options(settings))


def uvicorn_options(settings) -> dict:
    """The keyword arguments of the service's ``uvicorn.Config`` (:func:`serve`; the tests start it with them)."""
    from ..http_protocol import JSONErrorsH11Protocol

    # one line per request in the service's own log format (uvicorn's loggers propagate to the root logger that
    # mr2probe configures): the server logged no request at all, so an operator could not see who called what, nor
    # a client's 401s (an operator round). Method, path, query and status: never a header, so never the token.
    # A request h11 cannot parse is refused in JSON as every other error (uvicorn's own answer was plain text).
    return dict(host=settings.host, port=settings.port, log_level="info", log_config=None, access_log=True,
                http=JSONErrorsH11Protocol)


def run(args: argparse.Namespace) -> int:
    from ..main import create_app

    settings = settings_from_args(args)
    check_start(settings)
    serve(create_app(settings), settings)
    return 0
