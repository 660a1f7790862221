"""The Lambda deployment zip: our code, its third-party packages for the Lambda platform, the config.

Third-party packages are the project's dependencies less what the Lambda Python runtime
already provides (boto3, botocore) and what only the command line uses (click, rich),
installed by pip as manylinux wheels for the target (``--platform``, ``--only-binary=:all:``),
never built from source, so psycopg's compiled driver matches Lambda's Linux, not this
machine. The zip is reproducible: sorted entries, fixed timestamps, so an unchanged build
is an unchanged upload.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = {  # Lambda's Amazon Linux 2023 has glibc 2.34; older manylinux tags run there too
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"),
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64"),
}
PROVIDED = {"boto3", "botocore"}     # in every Lambda Python runtime (and the size of the rest together)
CLI_ONLY = {"click", "rich"}
# Our code the function imports: the handler, its observability, and the libraries under it.
SOURCES = ("router", "sources", "sinks", "operations/__init__.py", "operations/assemble.py", "handlers/__init__.py",
           "handlers/lambda_handler.py", "handlers/observability.py")
CONFIG_IN_ZIP = "config/tables.yaml"  # where handlers.lambda_handler looks without CDC_ROUTER_CONFIG
BUILD_INFO = "cdc-router-build.json"  # what the zip was built for: `cdc-router template` follows it
PYTHON_VERSIONS = ("3.11", "3.12", "3.13", "3.14")  # Lambda's Python runtimes this code runs on
TASK_ROOT = "/var/task"  # where Lambda unpacks the zip: the path tracebacks name
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class PackageError(Exception):
    """pip could not provide a wheel for the target, or a file is missing."""


@dataclass
class Package:
    path: Path
    size: int       # bytes of the zip
    unpacked: int   # bytes of its contents
    files: int
    requirements: list[str]
    bytecode: bool = False


@dataclass(frozen=True)
class BuildInfo:
    arch: str
    python_version: str
    bytecode: bool

    @classmethod
    def of(cls, zip_path: Path) -> BuildInfo | None:
        """What ``zip_path`` was built for; None for a zip without the record (or no zip)."""
        try:
            with zipfile.ZipFile(zip_path) as archive:
                found = json.loads(archive.read(BUILD_INFO))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None
        return cls(str(found["arch"]), str(found["python_version"]), bool(found.get("bytecode")))


def requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The function's third-party requirements, from pyproject.toml's dependencies."""
    dependencies = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return [spec for spec in dependencies if _name(spec) not in PROVIDED | CLI_ONLY]


def build(output: Path, config: Path, arch: str = "x86_64", python_version: str = "3.12",
          bytecode: bool = True, interpreter: str | None = None) -> Package:
    """Build the zip at ``output`` for Lambda's ``arch`` and Python ``python_version``.

    With ``bytecode``, every module is compiled at build time by a Python of that version
    (``interpreter``, else found here): Lambda's code directory is read-only, so a zip
    without ``.pyc`` files compiles everything it imports again at every cold start.
    """
    if not config.is_file():
        raise PackageError(f"{config}: no such config file")
    if python_version not in PYTHON_VERSIONS:
        raise PackageError(f"Python {python_version} is not a Lambda runtime this code runs on "
                           f"(allowed: {', '.join(PYTHON_VERSIONS)})")
    compiler = find_interpreter(python_version, interpreter) if bytecode else None
    with tempfile.TemporaryDirectory(prefix="cdc-router-package-") as scratch:
        staging = Path(scratch)
        wanted = requirements()
        _pip_install(staging, wanted, arch, python_version)
        for provided in PROVIDED:  # in case a dependency pulled them in
            for leftover in staging.glob(f"{provided}*"):
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        _copy_sources(staging)
        (staging / CONFIG_IN_ZIP).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(config, staging / CONFIG_IN_ZIP)
        if compiler is not None:
            _compile(compiler, staging)
        info = {"arch": arch, "python_version": python_version, "bytecode": compiler is not None}
        (staging / BUILD_INFO).write_text(json.dumps(info, sort_keys=True) + "\n", encoding="utf-8")
        files, unpacked = _zip(staging, output)
    return Package(output, output.stat().st_size, unpacked, files, wanted, compiler is not None)


def find_interpreter(python_version: str, given: str | None = None) -> str:
    """A Python of ``python_version`` to compile with: ``given``, this one, or ``pythonX.Y`` on the PATH."""
    candidates = [given] if given else [sys.executable, shutil.which(f"python{python_version}")]
    for candidate in (c for c in candidates if c):
        if _version_of(candidate) == python_version:
            return candidate
    raise PackageError(f"{given or f'no Python {python_version} found here'}"
                       f"{' is not Python ' + python_version if given else ''}: the zip's bytecode must be "
                       f"compiled by the runtime's Python (--python PATH names one; --no-bytecode builds "
                       "without, for a slower cold start)")


def _version_of(interpreter: str) -> str | None:
    try:
        done = subprocess.run([interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _compile(interpreter: str, staging: Path) -> None:
    """``.pyc`` beside every module, valid whatever the files' times (unchecked hash: the zip never
    changes once deployed), naming /var/task in tracebacks, identical from one build to the next."""
    done = subprocess.run([interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                           "-s", str(staging), "-p", TASK_ROOT, str(staging)], capture_output=True, text=True)
    if done.returncode != 0:
        raise PackageError("compiling the bytecode failed: " + (done.stdout + done.stderr).strip().splitlines()[-1])


def _name(spec: str) -> str:
    return re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0].lower().replace("_", "-")


def _pip_install(target: Path, specs: list[str], arch: str, python_version: str) -> None:
    if arch not in PLATFORMS:
        raise PackageError(f"unknown architecture {arch!r} (allowed: {', '.join(PLATFORMS)})")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--target", str(target), "--implementation", "cp", "--python-version", python_version,
               "--only-binary=:all:", "--no-compile", "--upgrade"]
    for platform in PLATFORMS[arch]:
        command += ["--platform", platform]
    done = subprocess.run(command + specs, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.startswith("ERROR")] or done.stderr.splitlines()
        raise PackageError(f"pip could not install {', '.join(specs)} for {arch}, Python {python_version}: "
                           + (lines[-1] if lines else f"exit code {done.returncode}"))


def _copy_sources(staging: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for source in SOURCES:
        origin, destination = ROOT / source, staging / source
        destination.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, destination, ignore=ignore)
        else:
            shutil.copyfile(origin, destination)


def _zip(staging: Path, output: Path) -> tuple[int, int]:
    output.parent.mkdir(parents=True, exist_ok=True)
    paths = sorted(p for p in staging.rglob("*") if p.is_file())
    unpacked = 0
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in paths:
            info = zipfile.ZipInfo(path.relative_to(staging).as_posix(), date_time=_FIXED_TIME)
            info.external_attr = (0o755 if path.stat().st_mode & 0o111 else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            unpacked += len(data)
            archive.writestr(info, data)
    return len(paths), unpacked
