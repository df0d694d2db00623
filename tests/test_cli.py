"""The console script: every subcommand is listed, and one that cannot be imported is an error (the
package's registries likewise): nothing disappears silently."""

from __future__ import annotations

import subprocess
import sys

import pytest

from privacam.cli import COMMANDS, build_parser, main

NAMES = ["demo", "train", "evaluate", "report", "sweep", "anonymize", "export", "datasets", "configs"]


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    listed = [n for n in NAMES if f"\n    {n} " in out]
    assert listed == NAMES and len(COMMANDS) == len(NAMES)


def test_a_subcommand_that_fails_to_import_is_an_error(monkeypatch):
    monkeypatch.delitem(sys.modules, "privacam.cli.sweep", raising=False)
    monkeypatch.setitem(sys.modules, "privacam.cli.sweep", None)  # as if the module failed to import
    with pytest.raises(ImportError, match="privacam.cli.sweep"):
        build_parser()
    # from the shell: a non-zero exit that names the module, not a help text without the command
    code = ("import sys; sys.modules['privacam.cli.sweep'] = None\n"
            "from privacam.cli import main\nsys.exit(main(['--help']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "privacam.cli.sweep" in r.stderr and "usage:" not in r.stdout


def test_a_registering_module_that_fails_to_import_is_an_error():
    code = "import sys; sys.modules['privacam.models.feature'] = None\nimport privacam"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "privacam.models.feature" in r.stderr
    filled = ("import privacam.registry as r\n"
              "print(*(len(x) > 0 for x in (r.ENCODERS, r.UTILITY_MODELS, r.ADVERSARIES, r.RECONSTRUCTORS, r.ATTACKERS,"
              " r.PRIVACY_LOSSES, r.SCHEDULES, r.DATASETS)))")
    r = subprocess.run([sys.executable, "-c", filled], capture_output=True, text=True, timeout=300)
    assert r.stdout.split() == ["True"] * 8  # importing any privacam module fills every registry


def test_demo_time_line_counts_the_process_from_its_start():
    """The demo's time line (copied into README) counts the whole command, the interpreter start included:
    a process that sleeps before importing privacam reports at least that sleep and at most its wall time."""
    import time

    from privacam.demo import timing_line
    from privacam.utils import process_seconds

    if process_seconds() is None:
        pytest.skip("no /proc here: the time line then omits the process time")
    t = time.time()
    r = subprocess.run([sys.executable, "-c", "import time; time.sleep(1.0); from privacam.utils import process_seconds; "
                        "print(process_seconds())"], capture_output=True, text=True, timeout=300, check=True)
    wall = time.time() - t
    assert 1.0 <= float(r.stdout) <= wall + 0.05  # from this process's start, not the machine's or the import's
    line = timing_line({"train": 5.0, "raw": 7.0, "total": 12.0, "process": 20.0})
    assert "12 s in all (training 5 s, audits 7 s)" in line and "20 s from the command's start" in line
    assert "from the command's start" not in timing_line({"train": 5.0, "total": 5.0, "process": None})
