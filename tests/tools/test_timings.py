"""The times the course states are generated from recorded runs, and a stale one is caught."""
import json

import nbformat
import pytest

from course_lib.tools import timings


def make_course(tmp_path, run=None):
    """A one-notebook course with the markers, and a quick baseline holding ``run``."""
    nb_dir, base = tmp_path / "notebooks", tmp_path / "baselines"
    nb_dir.mkdir()
    base.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(
        "# 99 · Demo\n\n- **LR-1** a claim\n- **LR-2** another\n\n**Budget.** 2 epochs.\n\n"
        f"{timings.BLOCK[0]}\nold text\n{timings.BLOCK[1]}\n")]
    nbformat.write(nb, nb_dir / "99_demo.ipynb")
    (nb_dir / "README.md").write_text(f"# Notebooks\n\n{timings.TABLE[0]}\n{timings.TABLE[1]}\n\nmore\n")
    doc = {"notebooks": {"99_demo": {"metrics": {}, "verdicts": {}, **({"run": run} if run else {})}}}
    (base / "quick.json").write_text(json.dumps(doc))
    return nb_dir, base


RUN = {"duration_s": 185.4, "finished": "2026-12-02T16:00:00+0000", "device": "cpu (2 threads)",
       "torch": "2.14.1", "git_commit": "abc1234"}


def test_writes_the_recorded_time_then_is_up_to_date(tmp_path):
    nb_dir, base = make_course(tmp_path, RUN)
    assert timings.main(["--notebooks", str(nb_dir), "--baselines", str(base), "--check"]) == 1
    assert timings.main(["--notebooks", str(nb_dir), "--baselines", str(base)]) == 0
    first = nbformat.read(nb_dir / "99_demo.ipynb", as_version=4).cells[0].source
    assert "`quick` 3 min 05 s on 2 CPU cores (2026-12-02, cpu (2 threads), torch 2.14.1, commit abc1234)" in first
    assert "`standard` not recorded yet" in first and "old text" not in first
    assert first.startswith("# 99 · Demo") and "**Budget.** 2 epochs." in first  # the rest is kept
    table = (nb_dir / "README.md").read_text()
    assert "| `99_demo` | LR-1, LR-2 | 3 min 05 s | not recorded | not recorded |" in table
    assert table.endswith("\n\nmore\n")
    assert timings.main(["--notebooks", str(nb_dir), "--baselines", str(base), "--check"]) == 0


def test_a_new_recording_makes_the_stated_time_stale(tmp_path):
    nb_dir, base = make_course(tmp_path, RUN)
    timings.main(["--notebooks", str(nb_dir), "--baselines", str(base)])
    doc = json.loads((base / "quick.json").read_text())
    doc["notebooks"]["99_demo"]["run"]["duration_s"] = 240
    (base / "quick.json").write_text(json.dumps(doc))
    assert timings.update(nb_dir, base, write=False) == [str(nb_dir / "99_demo.ipynb"), str(nb_dir / "README.md")]


def test_missing_markers_say_what_to_add(tmp_path, capsys):
    nb_dir, base = make_course(tmp_path)
    (nb_dir / "README.md").write_text("# no table markers\n")
    assert timings.main(["--notebooks", str(nb_dir), "--baselines", str(base), "--check"]) == 2
    assert "<!-- times-table -->" in capsys.readouterr().err


@pytest.mark.parametrize("seconds, words", [(45.4, "45 s"), (60, "1 min 00 s"), (1505, "25 min 05 s")])
def test_durations_read_as_a_student_reads_a_wait(seconds, words):
    assert timings.duration(seconds) == words


def test_the_committed_course_states_its_recorded_times():
    """Fails when a time was typed by hand or a re-recorded baseline was not written through."""
    assert timings.update(timings.ROOT / "notebooks", timings.ROOT / "baselines", write=False) == []
