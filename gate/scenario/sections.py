"""The tables of a scenario file, validated (pydantic, strict): ``[service]`` (or
``[services.NAME]``), ``[load]``, ``[profile]``, ``[budgets]`` and ``[gate]``."""

from __future__ import annotations

import re
import shlex
import urllib.parse
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gate.shapes import Shape
from gate.units import seconds

EnvPart = Literal["system", "machine", "python", "memray", "cpus", "recording"]
"""A part of the environment key (``gate.environment.ENV_PARTS``)."""
ENV_PARTS: tuple[EnvPart, ...] = ("system", "machine", "python", "memray", "cpus", "recording")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]*$"
"""A scenario's name: it names its baseline file and output folder."""


def _duration(value: Any) -> Any:
    """A duration written as text (``"30s"``, ``"5m"``) in seconds; a number as it is
    (strict validation refuses any other type)."""
    return seconds(value) if isinstance(value, str) else value


PositiveSeconds = Annotated[float, BeforeValidator(_duration), Field(gt=0, le=24 * 3600)]
"""Seconds: a number, or text with a unit (``"30s"``, ``"1.5m"``, ``"2h"``)."""
MAX_LOAD_PROCESSES = 64
"""A typo such as ``processes = 800`` would start that many Python processes."""
MAX_REQUESTS = 1_000_000_000
"""More requests than Locust could send within the longest time limit (24 h)."""
MAX_SERVICES = 16
SERVICE_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]*$"
"""A service's name: no dot, so that its folder (``OUT/NAME/SERVICE``) never takes the
name of a file memgate writes beside it (``load.jsonl``, ``failure.json``)."""
CALLS_FOLDER = "calls"
"""``baselines/calls/`` keeps function-level histories: no scenario of several services
may keep its services' histories there."""
PORT_OF = re.compile(r"\{port:([^{}]*)\}")
"""``{port:NAME}``: the port of another service of the scenario."""


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain a NUL character")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
"""A string that goes into a command line, a path or the environment."""


class StrictModel(BaseModel):
    # strict: no true for 1 or "100" for 100; numbers must be finite.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ServiceSpec(StrictModel):
    """How to start the service under test."""

    command: list[Text] = Field(min_length=1)
    """``python app.py``, ``python -m module ...`` or an installed console script."""
    cwd: Text = "."
    env: dict[Text, Text] = {}
    shown_env: list[Text] = []
    """Names of ``env`` entries whose values ``result.json`` keeps as they are; every other
    value is kept as a hash (``sha256:`` and 16 hex digits of ``NAME=VALUE``), so that a
    token given with ``--env`` never reaches a file the Action uploads, and a changed
    value still tells the run's settings apart."""
    python: Text | None = None
    """The service's interpreter (a path from ``cwd``, or a name on ``PATH``); by default
    the ``python`` of the command as the service's ``PATH`` finds it, or a console
    script's own. It needs memray, memgate's version of it, and nothing else of memgate's."""
    health_url: str
    """Polled until it answers 2xx; its host must be loopback."""
    startup_timeout: PositiveSeconds = 30.0
    stop_timeout: PositiveSeconds = 15.0
    """Seconds to wait after the stop signal (SIGTERM read live, SIGINT for a capture file)
    before the next (SIGTERM, then SIGKILL)."""

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, value: Any) -> Any:
        if isinstance(value, str):
            return shlex.split(value)
        return value

    @field_validator("command")
    @classmethod
    def _program_named(cls, value: list[str]) -> list[str]:
        if not value[0]:
            raise ValueError("the program to run is an empty string")
        return value

    @field_validator("env")
    @classmethod
    def _variable_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not name or "=" in name:
                raise ValueError(f"{name!r} is not an environment variable name")
        return value

    @field_validator("health_url")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value):
            raise ValueError("must not contain spaces or control characters")
        if PORT_OF.search(value):
            raise ValueError("{port:NAME} cannot be used here: a health URL is the service's own")
        parts = urllib.parse.urlsplit(value.replace("{port}", "0"))
        if parts.scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        if parts.hostname not in LOOPBACK_HOSTS:
            raise ValueError(
                f"host {parts.hostname!r} is not loopback: memgate only loads 127.0.0.1"
            )
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("port must be a number or {port}") from None
        return value


class LoadSpec(StrictModel):
    """The Locust load: a plain locustfile, bounded in requests and time."""

    locustfile: Text
    user_classes: list[Text] = []
    """Names of the User classes to run; all of the file's by default."""
    users: int = Field(default=4, ge=1, le=10_000)
    spawn_rate: float = Field(default=4.0, gt=0)
    warmup_requests: int = Field(default=500, ge=0, le=MAX_REQUESTS)
    """Requests sent before measuring starts; imports, pools and caches fill here."""
    requests: int | None = Field(default=None, ge=1, le=MAX_REQUESTS)
    """Requests measured after the warm-up."""
    duration: PositiveSeconds | None = None
    """Seconds measured after the warm-up (whichever of requests and duration comes first)."""
    time_limit: PositiveSeconds = 600.0
    """Hard limit on the whole load, warm-up included."""
    processes: int = Field(default=1, ge=1, le=MAX_LOAD_PROCESSES)
    """Locust processes generating the load. Above 1, Locust's distributed mode: a master
    and this many workers on 127.0.0.1, the users shared out among the workers."""
    target: str | None = Field(default=None, pattern=NAME_PATTERN)
    """The service the load is sent to, in a scenario of several services."""
    stop_on_leak: bool = False
    """A soak: look at the heap while the load runs, and stop the load as soon as a leak
    is certain (a sequential test whose false alarms are bounded: see the README), rather
    than at its bounds. Needs the live capture."""
    tags: list[Text] = []
    """Run only the tasks tagged (Locust's ``@tag``) with one of these; all by default."""
    exclude_tags: list[Text] = []
    """Run none of the tasks tagged with one of these."""
    host: Text | None = None
    """The base URL the users are given (Locust's ``host``), on loopback at ``{port}`` (the
    service's; ``{port:NAME}``, another's): ``http://127.0.0.1:{port}/api``, say. By
    default the health URL's scheme and address."""
    options: dict[Text, Text | int | float | bool] = {}
    """The locustfile's own command-line options (added in ``init_command_line_parser``),
    by their flag's name: ``{ api-version = "2" }`` is ``--api-version=2`` (``true``: the
    bare flag). The locustfile reads them in ``environment.parsed_options``, as under
    ``locust``; those not given keep their defaults."""

    @field_validator("host")
    @classmethod
    def _host_on_loopback(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in value):
            raise ValueError("must not contain spaces or control characters")
        parts = urllib.parse.urlsplit(PORT_OF.sub("0", value.replace("{port}", "0")))
        if parts.scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        if parts.hostname not in LOOPBACK_HOSTS:
            raise ValueError(
                f"host {parts.hostname!r} is not loopback: memgate only loads 127.0.0.1"
            )
        if "{port" not in value:
            raise ValueError("must name the service's port as {port} (or {port:NAME})")
        return value

    @model_validator(mode="after")
    def _bounded(self) -> LoadSpec:
        if self.requests is None and self.duration is None:
            raise ValueError("set requests or duration (or both): the load must be bounded")
        if self.duration is not None and self.duration >= self.time_limit:
            raise ValueError(
                f"duration {self.duration:g} s cannot be measured within"
                f" time_limit {self.time_limit:g} s (which includes the warm-up)"
            )
        return self

    @field_validator("processes")
    @classmethod
    def _a_user_each(cls, value: int, info: ValidationInfo) -> int:
        users = info.data.get("users")
        if users is not None and value > users:
            raise ValueError(
                f"{value} processes for {users} users: every Locust worker needs a user"
            )
        return value


class ProfileSpec(StrictModel):
    """How memray profiles the service."""

    trace_python_allocators: bool = True
    """See every Python object allocation (needed to name the leaking line)."""
    native: bool = False
    """Also record native (C) stacks: slower, for leaks in extension modules."""
    follow_fork: bool = False
    """Also profile the processes the service forks (a prefork server's workers, such as
    gunicorn's): one capture each, read and summed with the main one. Needed whenever
    the service's work is done in forked processes."""
    flamegraph: bool = False
    """Live: write memray's flame graph of the allocations alive at the end of the load
    (``flamegraph.html``; ``flamegraph.PID.html`` for each fork)."""
    census: bool = True
    """Have memgate's agent count the garbage collector's objects in the service after
    the warm-up and after the load, to tell what keeps growing memory alive (the
    service pauses for each: the result says how long)."""
    retained_heap: bool = True
    """Judge leaks on the memory that survives a full garbage collection: memgate's agent
    runs ``gc.collect()`` in each profiled process every so often through the measured
    phase (its pauses kept to 5% of the time) and memgate reads the heap right after
    each. Without it (for a service that must not be collected from outside) the heap is
    judged at whatever moment of the collector's cycle each point falls: reference
    cycles waiting for a rare full collection ramp like a leak, and clean services on
    large frameworks fail or flag far more often."""
    capture: Literal["live", "file", "counters", "sampled", "auto"] = "sampled"
    """``sampled`` (the default) counts the heap exactly and samples the Python allocators
    (one allocation in ``sample_bytes`` bytes, the extension ``memgate-sampler`` in the
    service's Python): each stack's live bytes estimated, so sites are named, at about 0.8x
    the service's own speed; left unset, with ``native``, ``flamegraph`` or
    ``trace_python_allocators = false`` set, it is ``live``. ``live`` traces every
    allocation with memray and streams its records to memgate during the load (no
    capture file; memgate's memory and disk stay bounded however long the load; native
    frames, flame graphs; a quarter of the service's speed); ``file`` writes memray's
    capture file and reads it after the load (for memray's own reporters); ``counters``
    traces no allocation: the allocators' own counters give the heap exactly, at near
    the service's own speed, but no sites (no line is named); ``auto`` counts first, and
    decides with that run alone when its heap right after full collections surely grew
    less than 16 B/request (or ``max_growth_per_request``) and its shape is flat, a
    plateau or a step; otherwise runs the load again traced (``live``, with ``native``
    and ``flamegraph`` as set) and judges that run."""
    sample_bytes: int = Field(default=4096, ge=64, le=1 << 24)
    """``capture = "sampled"``: the mean bytes allocated between two samples (a Poisson
    process over the bytes, as tcmalloc samples): smaller names smaller leaks, and
    costs the service more."""

    @model_validator(mode="before")
    @classmethod
    def _traced_when_traces_are_asked(cls, data: object) -> object:
        """``capture`` unset: memray's ``live`` if the profile asks for what only its
        traces give (native frames, a flame graph, arenas alone), else ``sampled``."""
        if isinstance(data, dict) and "capture" not in data:
            if data.get("native") or data.get("flamegraph"):
                return {**data, "capture": "live"}
            if data.get("trace_python_allocators") is False:
                return {**data, "capture": "live"}
        return data

    @model_validator(mode="after")
    def _flamegraph_read_live(self) -> ProfileSpec:
        if self.flamegraph and self.capture == "file":
            raise ValueError(
                'flamegraph: memgate draws it from the live capture; with capture = "file",'
                " run memray flamegraph on capture.bin"
            )
        if self.capture in ("counters", "sampled") and (self.flamegraph or self.native):
            raise ValueError(
                f"{'flamegraph' if self.flamegraph else 'native'}: needs memray's traces;"
                f' capture = "{self.capture}" records none (use capture = "live" or "auto")'
            )
        if self.capture == "auto" and not self.retained_heap:
            raise ValueError(
                'capture = "auto" decides on the heap right after full collections:'
                " it needs retained_heap = true"
            )
        return self


class BudgetSpec(StrictModel):
    """Absolute limits: any run past one fails, whatever the history says."""

    max_peak_heap: ByteSize | None = None
    """Bytes, or a size such as ``"64MiB"``."""
    max_peak_rss: ByteSize | None = None
    max_growth_per_request: float | None = Field(default=None, ge=0)
    """Heap growth per request, bytes."""
    forbid_shapes: list[Annotated[Shape, Strict(False)]] = []
    """Shapes that fail a run, for example ``["leak", "fragmentation"]``."""


class MemberSpec(ServiceSpec):
    """One of several services of a scenario (``[services.NAME]``): started like
    ``[service]``, and profiled or held to budgets of its own if it says so."""

    profile: ProfileSpec | None = None
    """Instead of the scenario's ``[profile]`` for this service."""
    budgets: BudgetSpec | None = None
    """Instead of the scenario's ``[budgets]`` for this service."""

    def service(self) -> ServiceSpec:
        """How to start it, as ``[service]`` says it (already validated)."""
        return ServiceSpec.model_construct(
            **{name: getattr(self, name) for name in ServiceSpec.model_fields}
        )


class GateSpec(StrictModel):
    """How ``memgate check`` keeps history for this scenario."""

    keep: int = Field(default=20, ge=2, le=1000)
    """Runs kept in the baseline history."""
    env_match: list[EnvPart] = list(ENV_PARTS)
    """The parts of the environment key (``gate.environment.env_key``) a history run must
    share with this one to count as the same environment; drop ``cpus`` to compare a
    laptop's history with CI's runs as equals."""
