"""GitHub Actions as the runner sees it: workflow commands and output files read back,
and a simulated step's environment."""

from __future__ import annotations

from pathlib import Path


def parse_command(line: str) -> tuple[str, dict[str, str], str]:
    """One workflow command, read back as the Actions runner reads it: ``::name
    k=v,k=v::data``, properties split on ``,`` then the first ``=``, then unescaped."""
    assert line.startswith("::"), line
    end = line.index("::", 2)
    head, data = line[2:end], line[end + 2 :]
    name, _, props = head.partition(" ")
    properties = {}
    for pair in filter(None, props.split(",")):
        key, value = pair.split("=", 1)
        properties[key] = _unescape(value, prop=True)
    return name, properties, _unescape(data, prop=False)


def _unescape(text: str, *, prop: bool) -> str:
    text = text.replace("%0D", "\r").replace("%0A", "\n")
    if prop:
        text = text.replace("%3A", ":").replace("%2C", ",")
    return text.replace("%25", "%")


def read_file_commands(text: str) -> dict[str, str]:
    """``GITHUB_OUTPUT`` records (``name=value`` or ``name<<DELIMITER`` ... ``DELIMITER``)."""
    values: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for part in lines:
                if part == delimiter:
                    break
                body.append(part)
            else:
                raise AssertionError(f"{name}: no closing delimiter")
            values[name] = "\n".join(body)
        else:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def actions_step(step: Path, workspace: Path, **more: str) -> dict[str, str]:
    """A simulated GitHub Actions step in the new folder ``step``: the environment of a
    pull request's job, with the summary and output files it appends to (empty)."""
    step.mkdir()
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_STEP_SUMMARY": str(step / "summary.md"),
        "GITHUB_OUTPUT": str(step / "output"),
        "GITHUB_EVENT_NAME": "pull_request",
        **more,
    }
    for name in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        Path(env[name]).write_text("")
    return env


def runner_lines(text: str) -> list[str]:
    """Lines as the Actions runner reads a step's output: ended by LF, CR or CRLF only
    (not by the other separators Python's ``splitlines`` knows)."""
    assert text.endswith("\n")
    return text[:-1].replace("\r\n", "\n").replace("\r", "\n").split("\n")
