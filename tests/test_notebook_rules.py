"""Rules every notebook in notebooks/ follows, and the ways a researcher starts them.

- The committed .ipynb is the notebook's only source: no script writes notebooks, and it carries
  no outputs (an executed copy goes to runs/ or a temporary folder, never back into git).
- One ``parameters`` cell, then a cell that checks what papermill injected (strict parameters,
  also under plain ``papermill``).
- The notebooks declare the project's kernel; ``make lab`` serves them with it (as root too).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from docrestore import config as C
from docrestore import notebook as NB

ROOT = C.PROJECT_ROOT
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks_and_no_script_writes_them():
    assert len(NOTEBOOKS) >= 5
    for folder in ("scripts", "src"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "new_notebook(" not in text, f"{path} generates notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_strict_and_declares_the_project_kernel(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == NB.KERNEL_NAME, "declare the project's kernel (make lab)"
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, (
            f"{path.name} was committed with outputs; run `python -m docrestore.notebook tidy {path}`")
    params = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    declared = NB.parse_parameters(code[params[0]].source)
    assert declared, "the parameters cell assigns the notebook's parameters"
    after = code[params[0] + 1].source
    assert re.search(r"^check_parameters\(globals\(\)", after, re.M), (
        "the first code cell after the parameters cell calls check_parameters(globals(), ...)")


def test_tidy_brings_a_saved_notebook_to_the_rules(tmp_path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("weight = 5.0\n")
    params.metadata["tags"] = ["parameters"]
    run = nbformat.v4.new_code_cell("print(weight)", execution_count=3,
                                    outputs=[nbformat.v4.new_output("stream", text="5.0\n")])
    nb.cells = [params, run]
    path = tmp_path / "05_pages.ipynb"
    nbformat.write(nb, path)
    changes = NB.tidy(path)
    assert len(changes) == 3, changes
    tidied = nbformat.read(path, as_version=4)
    assert tidied.metadata.kernelspec.name == NB.KERNEL_NAME
    assert 'check_parameters(globals(), "05_pages")' in tidied.cells[1].source
    assert tidied.cells[2].outputs == [] and tidied.cells[2].execution_count is None
    assert NB.tidy(path) == []  # idempotent


def test_parameter_problems_name_the_parameter_and_the_kind():
    declared = {"weight": 5.0, "tap": "cnn_last", "profile": None, "reuse": True, "taps": ["cnn1"]}
    assert NB.parameter_problems({"weight": 1, "profile": "smoke", "PAPERMILL_INPUT_PATH": "x"},
                                 declared, "03") == []
    (p,) = NB.parameter_problems({"wieght": 5}, declared, "03")
    assert "'wieght'" in p and "Did you mean 'weight'?" in p
    (p,) = NB.parameter_problems({"reuse": "no"}, declared, "03")
    assert "'reuse' = 'no' is text" in p and "true/false" in p
    (p,) = NB.parameter_problems({"taps": "cnn1"}, declared, "03")
    assert "a list" in p


def test_check_parameters_reads_papermills_injected_cell():
    ns = {"_ih": ["", "weight = 5.0\ntap = 'cnn_last'\n", "# Parameters\nwieght = 5\n", "check_parameters(globals())"],
          "weight": 5.0, "tap": "cnn_last", "wieght": 5}
    with pytest.raises(NB.ParameterError, match="Did you mean 'weight'"):
        NB.check_parameters(ns, "03_feature_loss")
    ns["_ih"][2] = "# Parameters\nweight = 2\n"
    NB.check_parameters(ns, "03_feature_loss")  # declared, of the right kind
    ns["_ih"] = ["", "weight = 5.0\n", "check_parameters(globals())"]
    NB.check_parameters(ns)  # run by hand in JupyterLab: nothing injected, nothing to check


@pytest.mark.e2e
def test_plain_papermill_stops_at_a_misspelt_parameter(tmp_path, project_kernel):
    """What the issue tried: `papermill 03_feature_loss.ipynb out.ipynb -p wieght 5` exited 0."""
    out = tmp_path / "out.ipynb"
    res = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "03_feature_loss.ipynb"),
                          str(out), "-p", "wieght", "5", "-p", "profile", "smoke", "--cwd", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode != 0
    assert "parameter 'wieght' is not in the parameters cell" in res.stderr
    assert "Did you mean 'weight'?" in res.stderr
    cells = json.loads(out.read_text())["cells"]
    ran = [c for c in cells if c["cell_type"] == "code" and c.get("execution_count")]
    assert "check_parameters" in "".join(ran[-1]["source"]), "it stops at the check, before any training"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_lab_serves_the_notebooks_with_the_project_kernel(tmp_path, project_kernel):
    """`make lab`'s command (python -m docrestore.notebook lab): headless, --allow-root as root, the
    URL with its token printed; a kernel started by the server runs notebook 00's import cell."""
    import urllib.request

    from jupyter_client import BlockingKernelClient

    port = _free_port()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"))
    log = tmp_path / "lab.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "docrestore.notebook", "lab", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, url = time.time() + 120, None
        while url is None and time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
            m = re.search(rf"(http://127\.0\.0\.1:{port}/lab\?token=(\w+))", log.read_text())
            url = m and m.group(1)
        assert url, f"no URL with a token printed:\n{log.read_text()[-3000:]}"
        token = re.search(r"token=(\w+)", url).group(1)
        base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"token {token}"}
        req = urllib.request.Request(f"{base}/api/kernels", data=json.dumps({}).encode(), headers=headers,
                                     method="POST")
        kernel = json.loads(urllib.request.urlopen(req, timeout=60).read())
        assert kernel["name"] == NB.KERNEL_NAME  # the server's default: the project's kernel
        client = BlockingKernelClient(connection_file=str(tmp_path / "runtime" / f"kernel-{kernel['id']}.json"))
        client.load_connection_file()
        client.start_channels()  # no wait_for_ready: its heartbeat check fails while the kernel still imports
        nb = nbformat.read(ROOT / "notebooks" / "00_data_synthesis.ipynb", as_version=4)
        imports = next(c.source for c in nb.cells if c.cell_type == "code" and "import" in c.source
                       and "check_parameters" not in c.source)
        outputs: list = []
        reply = client.execute_interactive(imports + "\nimport sys; print(sys.prefix)", timeout=120,
                                           output_hook=lambda msg: outputs.append(msg))
        assert reply["content"]["status"] == "ok"
        printed = "".join(m["content"].get("text", "") for m in outputs  # stdout: a warning on stderr may come last
                          if m["msg_type"] == "stream" and m["content"].get("name") == "stdout")
        assert Path(printed.strip().splitlines()[-1]).resolve() == Path(sys.prefix).resolve()
        client.stop_channels()
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/kernels/{kernel['id']}", headers=headers,
                                                      method="DELETE"), timeout=30)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert ("--allow-root" in NB.lab_command()) == (os.geteuid() == 0)  # root (containers) or a user


def _nbval(paths: list[Path], tmp_path: Path, timeout: int) -> subprocess.CompletedProcess:
    """pytest --nbval-lax on ``paths`` in the smoke profile (nbval injects no parameters, so the
    profile comes from $DOCRESTORE_PROFILE, the rule every entry point shares)."""
    env = dict(os.environ, **{C.PROFILE_ENV: "smoke"}, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/mlflow.db")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", "-q", "-n", "0", "--rootdir", str(tmp_path),
                           *map(str, paths)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.e2e
def test_nbval_runs_notebook_00_in_the_smoke_profile(tmp_path):
    """CI's nbval check; its dataset goes to the ignored data/ folder (reused by the next run)."""
    res = _nbval([ROOT / "notebooks" / "00_data_synthesis.ipynb"], tmp_path, 600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert re.search(r"\b\d+ passed", res.stdout)


@pytest.mark.slow
def test_nbval_runs_every_notebook_in_the_smoke_profile(tmp_path):
    """Every notebook in order (01-03 fill the smoke ledger under runs/results, 04 draws it into
    runs/figures and runs/tables); `make test-all`. The fast suite runs 01-04 through papermill."""
    res = _nbval(NOTEBOOKS, tmp_path, 3000)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
