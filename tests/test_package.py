"""The Lambda zip: built by `cdc-router package`, unpacked, and imported with nothing else on the path.

What is verified where: the zip for Lambda (Python 3.12, manylinux, x86_64 or arm64) is
checked by content, down to the ELF machine of psycopg's compiled driver; its compiled
wheels cannot load here (Python 3.11). So the same command also builds a zip for this
machine's Python and platform, which is unpacked and run in a subprocess with only the
zip and the packages the Lambda runtime provides (boto3 and its dependencies) on the
path: the handler imports, reads the config packed inside, and replicates a saved event
into the real Postgres.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from factories import EVENTS

from handlers.cli import app
from handlers.package import BuildInfo, build
from handlers.sam_template import load_deployable
from operations.assemble import load_config
from router.errors import ConfigError

LOCAL_ARCH = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
LOCAL_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
ELF_MACHINE = {"x86_64": 62, "arm64": 183}  # e_machine: EM_X86_64, EM_AARCH64
LAMBDA_LIMIT = 50 * 1024 * 1024  # a zip uploaded directly; 250 MB unzipped
IMPORT_AND_RUN = """
import json, sys
sys.path[:0] = sys.argv[1:3]
import handlers.lambda_handler as h, psycopg, yaml, cerberus, aws_lambda_powertools, boto3
outside = [m.__name__ for m in (h, psycopg, yaml, cerberus, aws_lambda_powertools)
           if not m.__file__.startswith(sys.argv[1])]
print(json.dumps({"response": h.handler(json.load(open(sys.argv[3])), None), "outside": outside,
                  "impl": psycopg.pq.__impl__, "config": h.CONFIG_PATH, "boto3": boto3.__file__}))
"""


def runtime_provided(tmp_path: Path) -> Path:
    """A folder holding only what the Lambda Python runtime provides: boto3 and its dependencies."""
    folder = tmp_path / "runtime"
    folder.mkdir()
    for name in RUNTIME_PROVIDED:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        origin = Path(spec.origin)
        source = origin.parent if spec.submodule_search_locations else origin
        (folder / source.name).symlink_to(source)
    return folder


def test_the_zip_imports_with_only_itself_and_boto3_on_the_path_and_replicates(
        tmp_path: Path, pg: Any, make_pipeline: Callable[..., Any]) -> None:
    config = Path(make_pipeline(pg).config.path)  # the Employees route, its tables created
    zip_path = tmp_path / "lambda.zip"
    # GIVEN a zip built for this machine's Python and platform
    # (its dsn comes from ${DATABASE_URL}: fine here, refused for a deployment unless allowed)
    done = CliRunner().invoke(app, ["package", "-c", str(config), "-o", str(zip_path), "--arch", LOCAL_ARCH,
                                    "--python-version", LOCAL_PYTHON, "--allow-dsn-password"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert f"{zip_path}: " in done.output and " MB zipped" in done.output and "bytecode compiled" in done.output
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(zip_path).extractall(unpacked)

    # WHEN the handler is imported and called in a Python without site-packages (-I -S) that writes no bytecode (-B)
    env = {k: v for k, v in os.environ.items() if k != "CDC_ROUTER_CONFIG"}
    run = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", IMPORT_AND_RUN, str(unpacked),
                          str(runtime_provided(tmp_path)), str(EVENTS / "employees_put_2001.json")],
                         capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)

    # THEN everything it imports comes from the zip, the config too, and the row is written
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["response"] == {"batchItemFailures": []}
    assert result["outside"] == [] and result["impl"] == "binary"
    assert result["config"] == str(unpacked / "config" / "tables.yaml")
    assert result["boto3"].startswith(str(tmp_path / "runtime"))
    assert pg.rows("Employees") == [{"Id": 2001, "Name": "Akua", "Department": "AnyDept"}]


def assert_compiled_for_this_python(zip_path: Path) -> None:
    """Every module has its .pyc: this Python's magic number, hash-based and unchecked (flags 0b01), so
    that a read-only /var/task loads it whatever the files' times, and never compiles at a cold start."""
    archive = zipfile.ZipFile(zip_path)
    names = set(archive.namelist())
    modules = [n for n in names if n.endswith(".py")]
    assert len(modules) > 100 and "handlers/lambda_handler.py" in modules
    for module in modules:
        cached = importlib.util.cache_from_source(module)
        assert cached in names, module
    header = archive.read(importlib.util.cache_from_source("handlers/lambda_handler.py"))[:8]
    assert header[:4] == importlib.util.MAGIC_NUMBER and int.from_bytes(header[4:8], "little") == 0b01


def test_the_zip_carries_bytecode_and_the_template_follows_its_architecture_and_python(tmp_path: Path) -> None:
    config = Path(__file__).parent.parent / "config" / "tables.yaml"
    other_arch = "arm64" if LOCAL_ARCH == "x86_64" else "x86_64"
    # GIVEN a zip built for this machine's Python (which compiles its bytecode)
    built = build(tmp_path / "lambda.zip", config, arch=LOCAL_ARCH, python_version=LOCAL_PYTHON)
    assert built.bytecode
    assert_compiled_for_this_python(built.path)
    # WHEN the template is rendered for it, THEN the runtime and architecture follow the zip
    done = CliRunner().invoke(app, ["template", "-c", str(config), "-o", "-", "--zip", str(built.path)])
    assert done.exit_code == 0, done.output
    function = yaml.safe_load(done.output)["Resources"]["Function"]["Properties"]
    assert (function["Runtime"], function["Architectures"]) == (f"python{LOCAL_PYTHON}", [LOCAL_ARCH])
    # and a template that contradicts the zip is refused: the function would not start
    refused = CliRunner().invoke(app, ["template", "-c", str(config), "-o", "-", "--zip", str(built.path),
                                       "--arch", other_arch])
    assert refused.exit_code == 2
    assert f"was built for --arch {LOCAL_ARCH}, not {other_arch}" in refused.output


def test_bytecode_is_compiled_by_the_runtimes_python_or_not_at_all(tmp_path: Path) -> None:
    config = Path(__file__).parent.parent / "config" / "tables.yaml"
    other = "3.12" if LOCAL_PYTHON != "3.12" else "3.13"
    done = CliRunner().invoke(app, ["package", "-c", str(config), "-o", str(tmp_path / "x.zip"),
                                    "--python-version", other, "--python", sys.executable])
    assert done.exit_code == 1
    assert f"{sys.executable} is not Python {other}: the zip's bytecode must be compiled" in done.output
    assert not (tmp_path / "x.zip").exists()


def test_a_password_in_the_zip_or_the_functions_environment_is_refused_unless_allowed(tmp_path: Path) -> None:
    config = tmp_path / "tables.yaml"
    shipped = (Path(__file__).parent.parent / "config" / "tables.yaml").read_text()
    config.write_text(shipped.replace("secret: ${DB_SECRET:-cdc-router/aurora}", "dsn: ${DATABASE_URL}"))
    done = CliRunner().invoke(app, ["package", "-c", str(config), "-o", str(tmp_path / "x.zip")])
    assert done.exit_code == 1
    assert done.output.startswith(f"{config}: sinks.aurora.dsn: comes whole from a ${{VAR}}, which the deployed "
                                  "function receives in its environment")
    assert "--allow-dsn-password" in done.output and not (tmp_path / "x.zip").exists()


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_the_lambda_zip_holds_manylinux_wheels_for_python_3_12_and_no_boto3(tmp_path: Path, arch: str) -> None:
    config = Path(__file__).parent.parent / "config" / "tables.yaml"
    built = build(tmp_path / "lambda.zip", config, arch=arch, bytecode=False)  # no Python 3.12 needed here
    names = zipfile.ZipFile(built.path).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {"router", "sinks", "handlers", "config", "psycopg", "psycopg_binary", "aws_lambda_powertools", "yaml",
            "cerberus"} <= tops
    assert not tops & {"boto3", "botocore", "click", "rich"}
    assert "handlers/lambda_handler.py" in names and "handlers/cli.py" not in names
    assert zipfile.ZipFile(built.path).read("config/tables.yaml") == config.read_bytes()
    machine = "aarch64" if arch == "arm64" else "x86_64"
    [driver] = [n for n in names if n.startswith("psycopg_binary/_psycopg.") and n.endswith(".so")]
    assert driver == f"psycopg_binary/_psycopg.cpython-312-{machine}-linux-gnu.so"
    elf = zipfile.ZipFile(built.path).read(driver)
    assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == ELF_MACHINE[arch]
    assert built.size == built.path.stat().st_size < LAMBDA_LIMIT and built.files == len(names)
    assert BuildInfo.of(built.path) == BuildInfo(arch, "3.12", bytecode=False)


def test_the_config_is_validated_before_packaging_with_its_variables_left_to_the_stack(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DB_HOST", raising=False)
    shipped = Path(__file__).parent.parent / "config" / "tables.yaml"
    assert set(load_deployable(shipped).routes) == {"employees", "orders"}
    by_host = tmp_path / "by_host.yaml"
    by_host.write_text(shipped.read_text().replace("secret: ${DB_SECRET:-cdc-router/aurora}",
                                                   'dsn: "host=${DB_HOST} user=cdc dbname=app"'))
    with pytest.raises(ConfigError, match="DB_HOST is not set"):
        load_config(by_host)  # what the function would say without its environment
    assert set(load_deployable(by_host).routes) == {"employees", "orders"}
    invalid = tmp_path / "tables.yaml"
    invalid.write_text("version: 1\nsinks: {aurora: {type: postgres, dsn: x}}\nroutes: {}\n")
    done = CliRunner().invoke(app, ["package", "-c", str(invalid), "-o", str(tmp_path / "x.zip")])
    assert (done.exit_code, done.output) == (1, f"{invalid}: routes: must not be empty\n")
    assert not (tmp_path / "x.zip").exists()
