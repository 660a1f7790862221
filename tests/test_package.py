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
from click.testing import CliRunner
from factories import EVENTS

from handlers.cli import app
from handlers.package import build
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
    done = CliRunner().invoke(app, ["package", "-c", str(config), "-o", str(zip_path), "--arch", LOCAL_ARCH,
                                    "--python-version", LOCAL_PYTHON], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert f"{zip_path}: " in done.output and " MB zipped" in done.output
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(zip_path).extractall(unpacked)

    # WHEN the handler is imported and called in a Python without site-packages (-I -S)
    env = {k: v for k, v in os.environ.items() if k != "CDC_ROUTER_CONFIG"}
    run = subprocess.run([sys.executable, "-I", "-S", "-c", IMPORT_AND_RUN, str(unpacked),
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


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_the_lambda_zip_holds_manylinux_wheels_for_python_3_12_and_no_boto3(tmp_path: Path, arch: str) -> None:
    config = Path(__file__).parent.parent / "config" / "tables.yaml"
    built = build(tmp_path / "lambda.zip", config, arch=arch)
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


def test_the_config_is_validated_before_packaging_with_its_variables_left_to_the_stack(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    shipped = Path(__file__).parent.parent / "config" / "tables.yaml"
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        load_config(shipped)  # what the function would say without its environment
    assert set(load_deployable(shipped).routes) == {"employees", "orders"}
    invalid = tmp_path / "tables.yaml"
    invalid.write_text("version: 1\nsinks: {aurora: {type: postgres, dsn: x}}\nroutes: {}\n")
    done = CliRunner().invoke(app, ["package", "-c", str(invalid), "-o", str(tmp_path / "x.zip")])
    assert (done.exit_code, done.output) == (1, f"{invalid}: routes: must not be empty\n")
    assert not (tmp_path / "x.zip").exists()
