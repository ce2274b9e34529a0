"""Native frames' libraries (:mod:`gate.service.native`), from real ELF files: the leaky test
extension built here, and the libraries this test process has loaded."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from gate.model import Frame, NativeFrame
from gate.service.native import Libraries, is_extension, is_runtime
from gate.service.tree import loaded_libraries
from tests.support import build_leaky


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_leaky(tmp_path_factory.mktemp("leaky"), debug=False)


@pytest.fixture(scope="module")
def mine() -> tuple[str, ...]:
    return loaded_libraries([os.getpid()])


def test_the_loaded_libraries_are_the_processes_own_files(mine) -> None:
    assert mine and all(path.startswith("/") for path in mine)
    assert len(set(mine)) == len(mine)
    assert any(os.path.basename(p).startswith("libc.so") for p in mine)
    assert loaded_libraries([]) == ()


def test_a_process_gone_lists_nothing() -> None:
    assert loaded_libraries([2**22 + 12345]) == ()


def test_an_extensions_functions_static_and_exported_are_its_own(leaky, mine) -> None:
    libraries = Libraries([*mine, str(leaky)], own=[str(leaky.parent)])
    assert libraries.owners("keep") == (str(leaky),)  # static: in .symtab only
    assert libraries.owners("PyInit_leaky") == (str(leaky),)  # exported: .dynsym too
    (kept,) = libraries.describe([Frame("keep", "<unknown>", 0)])
    assert kept == NativeFrame("keep", "<unknown>", 0, library=str(leaky), extension=True)
    assert str(kept) == f"keep in {leaky.name}"


def test_the_interpreters_functions_are_the_runtimes(leaky, mine) -> None:
    libraries = Libraries([str(leaky), *mine], own=[str(leaky.parent)])
    (owner,) = libraries.owners("PyList_Append")
    assert is_runtime(owner)
    (frame,) = libraries.describe([Frame("PyList_Append", "Objects/listobject.c", 322)])
    assert not frame.extension
    name = os.path.basename(owner)
    assert str(frame) == f"PyList_Append in {name} (Objects/listobject.c:322)"
    (libc,) = libraries.owners("malloc")
    assert is_runtime(libc)


def test_no_name_no_library(leaky) -> None:
    libraries = Libraries([str(leaky)])
    for function in ("<unknown>", "", "eep", "no_such_function_anywhere"):
        assert libraries.owners(function) == ()  # "eep" only ends "keep"
    (frame,) = libraries.describe([Frame("<unknown>", "<unknown>", 0)])
    assert not frame.extension and str(frame) == "<unknown>"


def test_files_that_are_not_elf_or_are_gone_define_nothing(tmp_path: Path) -> None:
    text = tmp_path / "locale-archive"
    text.write_bytes(b"not an ELF file at all" * 10)
    truncated = tmp_path / "cut.so"
    truncated.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 9)
    libraries = Libraries([str(text), str(truncated), str(tmp_path / "deleted.so"), str(tmp_path)])
    assert libraries.owners("keep") == ()


@pytest.mark.parametrize(
    ("path", "runtime"),
    [
        ("/usr/bin/python3.11", True),
        ("/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0", True),
        ("/usr/lib/x86_64-linux-gnu/libc.so.6", True),
        ("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", True),
        ("/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30", True),
        ("/usr/lib/python3.11/lib-dynload/_json.cpython-311-x86_64-linux-gnu.so", True),
        ("/venv/lib/python3.11/site-packages/memray/_memray.cpython-311-x86_64-linux-gnu.so", True),
        ("/venv/lib/python3.11/site-packages/memray.libs/libunwind-7e4e9a3c.so.8.0.1", True),
        ("/venv/lib/python3.11/site-packages/numpy/core/_multiarray_umath.cpython-311.so", False),
        ("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13", False),
        ("/srv/app/leaky.cpython-311-x86_64-linux-gnu.so", False),
        ("/usr/lib/x86_64-linux-gnu/libcrypto.so.3", False),
    ],
)
def test_the_runtime_is_the_interpreter_the_c_runtime_and_memray(path: str, runtime: bool) -> None:
    assert is_runtime(path) is runtime


@pytest.mark.parametrize(
    ("path", "extension"),
    [
        ("/venv/lib/python3.11/site-packages/numpy/core/_multiarray_umath.cpython-311.so", True),
        ("/venv/lib/python3.11/site-packages/numpy.libs/libopenblas64_p-r0.3.so", True),
        ("/usr/lib/python3/dist-packages/lxml/etree.cpython-311-x86_64-linux-gnu.so", True),
        ("/srv/app/leaky.cpython-311-x86_64-linux-gnu.so", True),  # the service's own
        ("/srv/application/other.so", False),  # only looks like it
        ("/usr/lib/x86_64-linux-gnu/libcrypto.so.3", False),  # loaded by the ssl module
        ("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13", False),
        (
            "/venv/lib/python3.11/site-packages/memray/_memray.cpython-311-x86_64-linux-gnu.so",
            False,
        ),
        ("/usr/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so", False),
        ("", False),
    ],
)
def test_an_extension_is_an_installed_packages_or_the_services_own(
    path: str, extension: bool
) -> None:
    assert is_extension(path, own=["/srv/app"]) is extension


TWIN = """
void keep(void) {}
void twin_only(void) { keep(); }
"""


def test_a_name_several_libraries_define_goes_to_its_neighbours_library(
    leaky: Path, tmp_path: Path
) -> None:
    twin = tmp_path / "twin.so"
    (tmp_path / "twin.c").write_text(TWIN)
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-O0", "twin.c", "-o", "twin.so"], cwd=tmp_path, check=True
    )
    libraries = Libraries([str(leaky), str(twin)], own=[str(leaky.parent), str(tmp_path)])
    assert set(libraries.owners("keep")) == {str(leaky), str(twin)}

    def libraries_of(*functions: str) -> list[str]:
        return [
            f.library for f in libraries.describe([Frame(f, "<unknown>", 0) for f in functions])
        ]

    assert libraries_of("keep", "leak") == [str(leaky), str(leaky)]  # leak is leaky's only
    assert libraries_of("keep", "twin_only") == [str(twin), str(twin)]
    assert libraries_of("twin_only", "keep") == [str(twin), str(twin)]  # inward, if need be
    assert libraries_of("keep") == [""]  # no one to tell: none rather than a guess
    (alone,) = libraries.describe([Frame("keep", "<unknown>", 0)])
    assert not alone.extension


def test_a_damaged_library_names_nothing_and_never_raises(leaky: Path, tmp_path: Path) -> None:
    """Section headers overwritten at random (sizes past the file, links to nowhere,
    wrong types): the lookup finds nothing, or finds what is still readable."""
    data = bytearray(leaky.read_bytes())
    header = int.from_bytes(data[0x28:0x30], "little")  # e_shoff
    count = int.from_bytes(data[0x3C:0x3E], "little")  # e_shnum
    rng = random.Random(16)
    for round_ in range(150):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            at = header + rng.randrange(count * 64)
            damaged[at] = rng.randrange(256)
        path = tmp_path / f"damaged{round_}.so"
        path.write_bytes(damaged)
        found = Libraries([str(path)]).owners("keep")
        assert found in ((), (str(path),))
        path.unlink()


@pytest.fixture(scope="module")
def stripped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_leaky(tmp_path_factory.mktemp("stripped"), debug=False, stripped=True)


CALLED = [  # as memray gives a stripped extension's frames: keep, leak, then the interpreter
    Frame("<unknown>", "<unknown>", 0),
    Frame("<unknown>", "<unknown>", 0),
    Frame("cfunction_vectorcall_O", "Objects/methodobject.c", 514),
]


def test_a_stripped_extensions_frames_are_named_by_their_library(stripped, mine) -> None:
    runtime = [path for path in mine if is_runtime(path)]
    libraries = Libraries([*runtime, str(stripped)], own=[str(stripped.parent)])
    assert libraries.stripped() == (str(stripped),)
    keep, leak, interpreter = libraries.describe(CALLED)
    assert keep == NativeFrame("<unknown>", "<unknown>", 0, str(stripped), extension=True)
    assert leak == keep and not interpreter.extension and is_runtime(interpreter.library)
    assert str(keep) == f"in {stripped.name} (no symbols)"
    # Its exported function is still named, and so are the unnamed frames it called.
    inner, exported = libraries.describe([CALLED[0], Frame("PyInit_leaky", "<unknown>", 0)])
    assert (inner.library, exported.library) == (str(stripped), str(stripped))


def test_an_unnamed_frame_no_elimination_can_place_has_no_library(
    stripped: Path, leaky: Path, mine, tmp_path: Path
) -> None:
    runtime = [path for path in mine if is_runtime(path)]
    # Two stripped extension modules: either could hold it.
    twin = tmp_path / "twin.cpython-311-x86_64-linux-gnu.so"
    twin.write_bytes(stripped.read_bytes())
    own = [str(stripped.parent), str(tmp_path)]
    two = Libraries([*runtime, str(stripped), str(twin)], own=own)
    assert [f.library for f in two.describe(CALLED)][:2] == ["", ""]
    # Called from an extension with symbols: a library that one loaded, not the stripped one.
    one = Libraries([*runtime, str(stripped), str(leaky)], own=[*own, str(leaky.parent)])
    (unnamed, caller) = one.describe([CALLED[0], Frame("leak", "<unknown>", 0)])
    assert caller.library == str(leaky) and unnamed.library == "" and str(unnamed) == "<unknown>"
    # A stripped interpreter: its own unnamed frames would pass for the extension's.
    bare = tmp_path / "bin" / "python3.11"
    bare.parent.mkdir()
    bare.write_bytes(stripped.read_bytes())
    assert Libraries([str(bare), str(stripped)], own=own).describe(CALLED[:1])[0].library == ""
    # A wheel's bundled library is never what the interpreter calls.
    bundled = tmp_path / "site-packages" / "somelib.libs" / "libcore-1a2b.so"
    bundled.parent.mkdir(parents=True)
    bundled.write_bytes(stripped.read_bytes())
    assert Libraries([*runtime, str(bundled)]).stripped() == ()


def test_a_library_with_symbols_or_no_elf_is_not_stripped(leaky: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.so"
    text.write_text("not an ELF file")
    own = [str(leaky.parent), str(tmp_path)]
    libraries = Libraries([str(leaky), str(text), str(tmp_path / "gone.so")], own=own)
    assert libraries.stripped() == ()  # leaky keeps its .symtab
