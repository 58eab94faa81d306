from pathlib import Path

import pytest

from proctovision.core.tasks import BUILTIN_TASKS, TaskError, load_task


def test_builtin_tasks_have_study_classes_in_order():
    assert load_task("hemorrhoid").classes == ("normal", "hemorrhoid")
    ldrf = load_task("ldrf")
    assert ldrf.classes == ("Rf0", "Rf1", "Rf2") and ldrf.ordinal
    assert load_task("fistula").classes == ("normal", "internal_orifice")
    assert set(BUILTIN_TASKS) == {"hemorrhoid", "ldrf", "fistula"}


def test_user_task_from_yaml(tmp_path: Path):
    path = tmp_path / "prolapse.yaml"
    path.write_text("name: prolapse\nclasses: [none, mild, severe]\nordinal: true\n")
    task = load_task(path)
    assert task.classes == ("none", "mild", "severe") and task.ordinal and task.num_classes == 3


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("name: x\nclasses: [a]\n", "at least two"),
        ("name: x\nclasses: [a, a]\n", "distinct"),
        ("name: x\nclasess: [a, b]\n", "clasess"),
    ],
)
def test_bad_task_files_are_refused_with_the_reason(tmp_path: Path, text: str, fragment: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TaskError, match=fragment):
        load_task(path)


def test_unknown_task_name_lists_the_known_ones():
    with pytest.raises(TaskError, match="hemorrhoid"):
        load_task("polyp")
