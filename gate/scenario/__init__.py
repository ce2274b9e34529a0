"""Read and validate scenario files (TOML).

A scenario says how to start the service, how to drive it with Locust, and how to
profile it. The format is documented in ``scenarios/README.md``; ``scenarios/demo.toml``
is the worked example. Relative paths are relative to the scenario file's folder.
The placeholder ``{port}`` in the command, the environment values and the health URL
is replaced by a free port on 127.0.0.1 chosen for each run.

A scenario runs one service (``[service]``) or several that work together
(``[services.NAME]`` tables, such as an API and the worker it hands jobs to): each is
started, health-checked and profiled on its own, in the order written, and
``{port:NAME}`` in a service's command or environment is the port of service NAME.
A file is read into a :class:`ScenarioFile`; its :meth:`~ScenarioFile.members` give one
:class:`Scenario` per service, whose service is always there: what runs, results and
baselines are made of. The tables themselves are validated in ``sections``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from gate._files import read_input
from gate.errors import InputError, one_line
from gate.model import scenario_key
from gate.scenario.sections import (
    CALLS_FOLDER,
    LOOPBACK_HOSTS,
    MAX_SERVICES,
    NAME_PATTERN,
    PORT_OF,
    SERVICE_NAME_PATTERN,
    BudgetSpec,
    GateSpec,
    LoadSpec,
    MemberSpec,
    ProfileSpec,
    ServiceSpec,
    StrictModel,
)

__all__ = [
    "CALLS_FOLDER",
    "LOOPBACK_HOSTS",
    "NAME_PATTERN",
    "PORT_OF",
    "SERVICE_NAME_PATTERN",
    "BudgetSpec",
    "GateSpec",
    "LoadSpec",
    "MemberSpec",
    "ProfileSpec",
    "Scenario",
    "ScenarioDoc",
    "ScenarioFile",
    "ServiceSpec",
    "Settings",
    "hidden_value",
    "load_scenario",
    "port_variable",
    "run_settings",
    "stored_settings",
]


class _Common(StrictModel):
    """What a scenario file and each of its services' scenarios have alike."""

    name: str = Field(min_length=1, pattern=NAME_PATTERN)
    description: str = ""


class ScenarioDoc(_Common):
    """A scenario file's contents, validated: one service or several."""

    service: ServiceSpec | None = None
    """The service under test; ``None`` in a scenario of several :attr:`services`."""
    services: dict[str, MemberSpec] = Field(default_factory=dict)
    """Several services that work together, in the order they start."""
    load: LoadSpec
    profile: ProfileSpec = ProfileSpec()
    budgets: BudgetSpec = BudgetSpec()
    gate: GateSpec = GateSpec()

    @model_validator(mode="after")
    def _one_or_several(self) -> ScenarioDoc:
        if (self.service is None) == (not self.services):
            raise ValueError("set [service], or [services.NAME] for several services (not both)")
        names = list(self.services)
        seen: dict[str, str] = {}
        for name in self.services:
            if not re.fullmatch(SERVICE_NAME_PATTERN, name):
                raise ValueError(f"services: {name!r} is not a name (letters, digits, _ and -)")
            # Case-insensitive file systems, and the port's environment variable, would
            # not tell them apart.
            for alike in (name.casefold(), port_variable(name)):
                if alike in seen:
                    raise ValueError(
                        f"services: {seen[alike]!r} and {name!r} are too alike"
                        f" (one folder or {port_variable(name)} for both)"
                    )
                seen[alike] = name
        if self.services and self.name == CALLS_FOLDER:
            raise ValueError(
                f"name: {CALLS_FOLDER!r} is kept for function-level histories"
                f" (baselines/{CALLS_FOLDER}/); name a scenario of several services otherwise"
            )
        if len(self.services) > MAX_SERVICES:
            raise ValueError(f"services: {len(self.services)} services, at most {MAX_SERVICES}")
        specs = [self.service] if self.service else list(self.services.values())
        for spec in specs:
            texts = [*spec.command, *spec.env.values()]
            for wanted in (m.group(1) for t in texts for m in PORT_OF.finditer(t)):
                if wanted not in names:
                    known = ", ".join(names) or "none: the scenario has one [service]"
                    raise ValueError(
                        f"{{port:{one_line(wanted)}}} names no service of the scenario"
                        f" (services: {known})"
                    )
        target = self.load.target
        if self.services and len(self.services) > 1 and target is None:
            raise ValueError(
                "load.target: required with several services: the service the load is sent to"
            )
        if target is not None and target not in names:
            raise ValueError(f"load.target: {target!r} is not a service of the scenario")
        profiles = [self.profile, *(m.profile for m in self.services.values() if m.profile)]
        if self.load.stop_on_leak and any(p.capture == "file" for p in profiles):
            raise ValueError(
                'load.stop_on_leak: needs profile.capture = "live", "counters", "sampled" or'
                ' "auto" (the heap is watched while the load runs)'
            )
        return self


class Settings(_Common):
    """One service's scenario as a run is made with it (what ``result.json`` keeps as
    ``settings``): the service, the load, how it is profiled, budgets and history."""

    service: ServiceSpec
    load: LoadSpec
    """Its ``target`` names this service's, in a scenario of several."""
    profile: ProfileSpec
    budgets: BudgetSpec
    gate: GateSpec


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One service's scenario: what a run, its result and its baseline history are made
    of. A file of one service gives one; a file of several gives one per service."""

    settings: Settings
    path: Path
    """The scenario file."""
    sha256: str
    """Hash of the file's bytes, so a baseline knows which version it was made with."""
    service_name: str | None = None
    """The service's name in a scenario of several; ``None`` for a file of one service."""

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def service(self) -> ServiceSpec:
        return self.settings.service

    @property
    def load(self) -> LoadSpec:
        return self.settings.load

    @property
    def profile(self) -> ProfileSpec:
        return self.settings.profile

    @property
    def budgets(self) -> BudgetSpec:
        return self.settings.budgets

    @property
    def gate(self) -> GateSpec:
        return self.settings.gate

    @property
    def key(self) -> str:
        """``NAME``, or ``NAME/SERVICE``: names its baseline history."""
        return scenario_key(self.name, self.service_name)

    @property
    def service_cwd(self) -> Path:
        return (self.path.parent / self.service.cwd).resolve()

    @property
    def locustfile(self) -> Path:
        return (self.path.parent / self.load.locustfile).resolve()


@dataclasses.dataclass(frozen=True)
class ScenarioFile:
    """A scenario file, read and validated: one service or several, and one load."""

    doc: ScenarioDoc
    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.doc.name

    @property
    def load(self) -> LoadSpec:
        return self.doc.load

    def members(self) -> list[Scenario]:
        """One scenario per service, in the order they start; for several services each
        is named after its service, with that service's own profile and budgets where it
        sets them, and the load's target filled in."""
        doc = self.doc
        members: list[tuple[str | None, ServiceSpec, ProfileSpec, BudgetSpec]]
        if doc.service is not None:
            members = [(None, doc.service, doc.profile, doc.budgets)]
        else:
            members = [
                (
                    name,
                    member.service(),
                    member.profile or doc.profile,
                    member.budgets or doc.budgets,
                )
                for name, member in doc.services.items()
            ]
        target = doc.load.target or (members[0][0] if doc.services else None)
        load = doc.load.model_copy(update={"target": target})
        return [
            Scenario(
                Settings(
                    name=doc.name,
                    description=doc.description,
                    service=service,
                    load=load,
                    profile=profile,
                    budgets=budgets,
                    gate=doc.gate,
                ),
                self.path,
                self.sha256,
                name,
            )
            for name, service, profile, budgets in members
        ]

    def with_overrides(
        self,
        *,
        env: dict[str, str] | None = None,
        requests: int | None = None,
        duration: float | None = None,
        warmup: int | None = None,
        capture: str | None = None,
        flamegraph: bool = False,
    ) -> ScenarioFile:
        """The scenario with command-line overrides applied: the service(s) and the load
        validated again with them, in the file's context; the profile (but for how the
        records are read, ``capture``, and a ``flamegraph`` asked for), budgets and gate
        settings kept as they were validated."""
        if not (env or flamegraph) and (requests, duration, warmup, capture) == (None,) * 4:
            return self
        kept = {"profile": True, "budgets": True}
        data = self.doc.model_dump(exclude={**kept, "gate": True, "services": {"__all__": kept}})

        def profile(spec: ProfileSpec) -> ProfileSpec | dict[str, object]:
            """The profile, as it was validated, or with the reading asked for (to be
            validated again with the rest)."""
            update: dict[str, object] = {"capture": capture} if capture else {}
            if flamegraph:
                update["flamegraph"] = True
            if not update:
                return spec
            # What the file set, not the defaults it left: an unset capture follows a
            # flame graph asked for here (see ProfileSpec.capture).
            return {**spec.model_dump(exclude_unset=True), **update}

        data.update(profile=profile(self.doc.profile), budgets=self.doc.budgets, gate=self.doc.gate)
        for name, member in self.doc.services.items():
            data["services"][name].update(
                profile=member.profile and profile(member.profile), budgets=member.budgets
            )
        load = data["load"]
        for spec in [data["service"]] if self.doc.service else data["services"].values():
            spec["env"] = {**spec["env"], **(env or {})}
        if requests is not None:
            load["requests"] = requests
            load["duration"] = duration
        elif duration is not None:
            load["duration"] = duration
            load["requests"] = None
        if warmup is not None:
            load["warmup_requests"] = warmup
        return dataclasses.replace(self, doc=_validate(data, self.path))


def stored_settings(settings: Settings) -> dict[str, Any]:
    """``settings`` as ``result.json`` keeps them: the service's environment values hashed,
    but for those its ``shown_env`` names (:attr:`ServiceSpec.shown_env`)."""
    stored = settings.model_dump(mode="json")
    shown = set(settings.service.shown_env)
    stored["service"]["env"] = {
        name: value if name in shown else hidden_value(name, value)
        for name, value in settings.service.env.items()
    }
    return stored


def hidden_value(name: str, value: str) -> str:
    """What a file keeps of an environment variable's value: a hash, which tells a change
    apart and cannot be read back (from a value of any length: a flag's ``1`` is seen
    through, and is no secret)."""
    return "sha256:" + hashlib.sha256(f"{name}={value}".encode()).hexdigest()[:16]


def port_variable(name: str) -> str:
    """``MEMGATE_PORT_NAME``: the environment variable holding service NAME's port."""
    return "MEMGATE_PORT_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def load_scenario(path: str | Path) -> ScenarioFile:
    """Read, validate and resolve a scenario file; raise :class:`InputError` with one line."""
    path = Path(path)
    raw = read_input(path, "scenario")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: scenario is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise InputError(f"{path}: not valid TOML: nested too deeply") from None
    data.setdefault("name", path.stem)
    scenario = ScenarioFile(_validate(data, path), path.resolve(), hashlib.sha256(raw).hexdigest())
    for member in scenario.members():
        where = f"services.{member.service_name}" if member.service_name else "service"
        try:
            has_locustfile = member.locustfile.is_file()
            has_cwd = member.service_cwd.is_dir()
        except OSError as exc:  # a name too long, a loop of symbolic links
            raise InputError(
                f"{path}: load.locustfile or {where}.cwd: {exc.strerror}: {exc.filename}"
            ) from None
        if not has_locustfile:
            raise InputError(f"{path}: load.locustfile: no such file {member.locustfile}")
        if not has_cwd:
            raise InputError(f"{path}: {where}.cwd: no such folder {member.service_cwd}")
    return scenario


def run_settings(settings: dict[str, Any]) -> tuple[BudgetSpec, GateSpec]:
    """The budgets and gate settings in a result's ``settings`` (the scenario it was run
    with), validated; :class:`InputError` naming the first bad key."""
    section = "budgets"
    try:
        budgets = BudgetSpec.model_validate(settings.get(section, {}))
        section = "gate"
        return budgets, GateSpec.model_validate(settings.get(section, {}))
    except ValidationError as exc:
        raise InputError(_first_error(exc, f"settings.{section}")) from None


def _validate(data: dict[str, Any], path: Path) -> ScenarioDoc:
    try:
        return ScenarioDoc.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError, section: str = "") -> str:
    """``key: what`` for the first error, the key below ``section`` if one is given."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join([section] * bool(section) + [one_line(str(p)) for p in first["loc"]])
    message = first["msg"].removeprefix("Value error, ")
    if not where:  # the scenario as a whole: the message names the keys
        where, message = message, ""
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "required key is missing"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}" if message else f"{where}{more}"
