"""Service configuration: the only place that reads the environment (prefix ``MR2PROBE_``).

Precedence, highest first: explicit keyword arguments (``Settings(data_dir=...)``, the CLI flags of
``mr2probe serve``), environment variables ``MR2PROBE_*``, then the defaults below.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from feature_cache.defaults import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, MAX_WORKERS
from probe.constraints import Device, check

from .datadir import LOCK_FILE
from .threads import MAX_THREADS

LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")

MAX_PORT = 65535  # the largest TCP port (mr2probe serve's --port checks it too)
DEFAULT_PORT = 8000  # the service's (MR2PROBE_PORT) and the demo's dashboard
DATABASE_FILE = "mr2probe.sqlite3"  # in the data directory
MAX_CPU_JOBS = 64  # MR2PROBE_CPU_JOBS's largest


class Settings(BaseSettings):
    """Settings of one service instance.

    Environment variables: ``MR2PROBE_`` and the field's name in capitals, one for each field below
    (``MR2PROBE_DATA_DIR``, ``MR2PROBE_MAX_UPLOADS``, ...); README.md's "Configuration" table lists them.
    """

    # hide_input_in_errors: a refused token is a secret, and pydantic would repeat it (input_value=...)
    model_config = SettingsConfigDict(env_prefix="MR2PROBE_", extra="ignore", hide_input_in_errors=True)

    data_dir: Path = Field(Path(".mr2probe"), description="state: SQLite database, uploads, caches, runs")
    data_root: Path | None = Field(
        None, description="server-side directories may be registered only under this root (unset: none)"
    )
    api_token: SecretStr | None = Field(
        None, description="when set, every /api route except /api/health needs 'Authorization: Bearer <token>'"
    )
    max_upload_bytes: int = Field(2 * 1024**3, gt=0, description="largest accepted upload (413 above)")
    max_uploads: int = Field(4, ge=1, le=1000, description="uploads streamed at the same time; one more is a 429 "
                             "until one has finished")
    upload_idle_seconds: float = Field(60.0, gt=0, le=3600, description="an upload that sends nothing for this long "
                                       "is ended with a 408 and its partial file removed")
    upload_min_rate: int = Field(16 * 1024, ge=0, description="bytes per second an upload must average once it has "
                                 "run for upload_idle_seconds, else it is ended with a 408 (a byte a minute kept "
                                 "its slot for ever); 0: no minimum")
    upload_max_seconds: float = Field(7200.0, gt=0, le=7 * 86400, description="the longest an upload may stream "
                                      "(408 past it): four uploads at the minimum rate held every slot for the ~36 h "
                                      "a 2 GiB upload takes at 16 KiB/s")
    max_json_bytes: int = Field(1024**2, gt=0, description="largest accepted request body other than an upload "
                                "(JSON; 413 above, checked before parsing)")
    cpu_jobs: int = Field(1, ge=1, le=MAX_CPU_JOBS, description="CPU jobs that may run at the same time (each a "
                          "thread with its own data in memory: 100,000 was taken; an operator round)")
    max_queued_jobs: int = Field(100, ge=1, le=100_000, description="jobs that may wait in the queue; a job request "
                                 "(or a resume) beyond them is a 429 until some have run or been cancelled")
    threads: int | None = Field(None, ge=1, le=MAX_THREADS, description="CPU threads of the jobs' numerical work "
                                "(torch, BLAS), shared by the jobs running at the same time (app.threads); unset: "
                                "one per core")
    device: str = Field("auto", description="torch device of extraction, and of a probe whose config says "
                        "device 'auto' (a probe config's device defaults to cpu): auto, cpu, cuda or cuda:N")
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=MAX_PORT)
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Host header values the server answers (comma-separated; '*': any); "
        "always: localhost, 127.0.0.1, [::1] and the bind host")
    extract_batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, le=MAX_BATCH_SIZE, description="images per extraction "
                                    "chunk (resume granularity)")
    extract_workers: int | None = Field(None, ge=0, le=MAX_WORKERS, description="extraction worker processes: on CPU each "
                                        "decodes and encodes its own batches with one thread (default: one per "
                                        "torch thread from 2,000 images); on CUDA they decode while the GPU "
                                        "encodes (default: one per core but one, from 2 to 8)")

    @field_validator("data_dir", "data_root")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        """Resolved once: a relative folder (``--data-dir ./svc``) put relative paths into messages, which the
        client messages' cleaning (absolute paths only) let through."""
        return None if value is None else Path(value).expanduser().resolve()

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        return check("device", value, [Device()])  # the names probe.devices.resolve_device takes, said as there

    @field_validator("api_token")
    @classmethod
    def _blank_token_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        """Surrounding blanks are dropped (a pasted newline), and a blank token is no token. A token is printable
        ASCII: HTTP clients send headers as bytes that the server reads as Latin-1, so 'pässwörd' sent by a UTF-8
        client never matched (an attack round); the message does not repeat it."""
        if value is None or not value.get_secret_value().strip():
            return None
        token = value.get_secret_value().strip()
        if not all(" " < c < "\x7f" for c in token):
            raise ValueError("the API token must be printable ASCII without spaces (letters, digits, punctuation): "
                             "HTTP headers carry nothing else reliably; e.g. python -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))'")
        return SecretStr(token)

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if "*" in host[1:] or (host.startswith("*") and host != "*" and not host.startswith("*.")):
                raise ValueError(f"allowed host patterns are names, '*.domain' or '*'; got {host!r}")
        return value

    @property
    def token(self) -> str | None:
        """The API token in clear, or None when the API is open."""
        return self.api_token.get_secret_value() if self.api_token else None

    @property
    def db_path(self) -> Path:
        return self.data_dir / DATABASE_FILE

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def caches_dir(self) -> Path:
        return self.data_dir / "caches"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def managed_paths(self) -> tuple[Path, ...]:
        """What the service writes and deletes in its data folder: no server path may lead into them (a cache file
        registered in caches/ went with its data set's deletion; an attack round). The rest of the data folder
        may hold a data root (``--data-root /srv/mr2/datasets`` beside ``--data-dir /srv/mr2``; a review)."""
        database = [self.db_path.with_name(self.db_path.name + end) for end in ("", "-wal", "-shm", "-journal")]
        return (self.uploads_dir, self.caches_dir, self.runs_dir, *database, self.data_dir / LOCK_FILE)

    @property
    def trusted_hosts(self) -> list[str]:
        """Host header values answered: the local names, the bind host and ``allowed_hosts``."""
        bind = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return list(dict.fromkeys([*LOCAL_HOSTS, bind.lower(), *(h.lower() for h in self.allowed_hosts)]))

    def resolved_device(self) -> str:
        """``auto`` becomes ``cuda`` when torch sees a GPU, else ``cpu`` (:func:`probe.devices.resolve_device`,
        which imports torch: only when a job needs to know)."""
        if self.device != "auto":
            return self.device
        from probe.devices import resolve_device

        return str(resolve_device("auto"))


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@lru_cache
def get_settings() -> Settings:
    """Settings from the environment, built once (tests override the dependency instead)."""
    return Settings()
