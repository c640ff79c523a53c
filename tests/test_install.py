"""What a user installs: the wheel carries what the product reads at run time, and a feature
whose extra is missing says so in one line naming the extra (pyproject.toml, README)."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyasp_screen.cli import main
from pyasp_screen.extras import MissingExtra, install_command, require

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "kb" / "ct1190b" / "cases"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(out), str(ROOT)], check=True)
    [whl] = out.glob("pyasp_screen-*.whl")
    return whl


def test_the_wheel_carries_knowledge_bases_vocabulary_schemas_and_protocol_texts(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("pyasp_screen/kb/lib/core.lp", "pyasp_screen/kb/lib/vocabulary.yaml",
                   "pyasp_screen/kb/lib/manifest.yaml", "pyasp_screen/kb/ct1190b/manifest.yaml",
                   "pyasp_screen/schema/record.schema.json", "pyasp_screen/protocol/ct1190b-registry.txt",
                   "pyasp_screen/data/steroid_equivalents.csv", "pyasp_screen/knowledge/vocabulary.py"):
        assert needed in names, needed


def test_the_installed_wheel_screens_the_bundled_example(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True)
    # Run outside the source tree, with the installed copy first on the path.
    code = ("import sys, pyasp_screen; assert 'site' in pyasp_screen.__file__, pyasp_screen.__file__; "
            "from pyasp_screen.cli import main; sys.argv = ['pyasp-screen', 'screen', sys.argv[1], '--format', 'csv']; main()")
    run = subprocess.run([sys.executable, "-c", code, str(CASES / "sle-eligible.yaml")], cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "SLE-ELIGIBLE" in run.stdout and "eligible" in run.stdout


def test_require_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.raises(MissingExtra) as error:
        require("matplotlib", "plot", "an attrition chart (--plot)")
    assert str(error.value) == f"an attrition chart (--plot) needs the 'plot' extra: {install_command('plot')}"


def test_the_install_command_installs_from_the_project_not_from_pypi():
    # pyasp-screen is not on PyPI: 'pip install pyasp-screen[web]' would fetch whatever someone
    # publishes under that name. An editable install names its folder and this interpreter.
    command = install_command("web")
    assert command == f"{sys.executable} -m pip install -e '{ROOT}[web]'"
    assert "pyasp-screen[" not in command


def test_an_installed_copy_says_to_install_the_extra_in_the_project_folder(tmp_path):
    # a wheel installed elsewhere has no pyproject.toml beside it (-S: not the editable install)
    target = tmp_path / "site"
    (target / "pyasp_screen").mkdir(parents=True)
    (target / "pyasp_screen" / "extras.py").write_text((ROOT / "pyasp_screen" / "extras.py").read_text())
    run = subprocess.run([sys.executable, "-S", "-c", "from pyasp_screen.extras import install_command; "
                          "print(install_command('web'))"], env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.stdout.strip() == "pip install '.[web]' in the pyasp-screen folder", run.stderr


@pytest.mark.parametrize("args, blocked, extra", [
    (["cohort", str(CASES), "--plot", "chart.png"], "matplotlib", "plot"),
    (["cohort", str(CASES), "--scheduler", "local", "--jobs", "1"], "dask.distributed", "dask"),
    (["cohort", str(CASES), "--results", "rows.parquet"], "pyarrow", "parquet"),
])
def test_a_missing_extra_is_one_line_naming_it(args, blocked, extra, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, blocked, None)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert any(f"'{extra}' extra: {install_command(extra)}" in line for line in lines), result.output
    assert "pyasp-screen[" not in result.output  # not on PyPI: a name anyone could publish
    assert "Traceback" not in result.output
