"""tools/ci_timings.py: the CI output ends with how long each make stage and each Molecule step took."""
import io

from tools.ci_timings import main, report, timings

# (seconds on the clock when the line arrived, the line as `make test` prints it)
LOG = [
    (0, ".venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt"),
    (200, ".venv/bin/yamllint -s ."),
    (300, ".venv/bin/pytest -q tests/unit"),
    (305, ".venv/bin/pytest -q tests/integration"),
    (360, ".venv/bin/pytest -q tests/lab"),
    (480, 'PATH="/tmp/ci/main/.venv/bin:$PATH" .venv/bin/molecule test --all'),
    (481, "INFO     \x1b[32mdefault\x1b[0m ➜ \x1b[33mcreate\x1b[0m: Executing"),
    (530, "INFO     default ➜ create: Executed: Successful"),
    (531, "INFO     default ➜ converge: Executing"),
    (540, "  │ INFO something a playbook printed"),
    (600, "INFO     default ➜ converge: Executed: Successful"),
    (601, "INFO     llamacpp ➜ verify: Executing"),
    (901, "INFO     llamacpp ➜ verify: Executed: Failed"),
    (902, ""),
]


def test_stages_and_steps_with_their_seconds():
    stages, steps, total = timings(LOG)
    assert stages == [("venv", 200), ("lint", 100), ("unit", 5), ("integration", 55), ("lab", 120),
                      ("molecule", 422)]
    assert steps == [("default", "create", 49), ("default", "converge", 69), ("llamacpp", "verify", 300)]
    assert total == 902


def test_report_sums_each_scenario():
    lines = report(*timings(LOG))
    assert lines[0] == "ci timings: 902 s in all"
    assert any(l.split() == ["molecule", "default", "118", "s:", "create", "49,", "converge", "69"] for l in lines)
    assert any(l.split()[:3] == ["molecule", "llamacpp", "300"] for l in lines)


def test_a_step_that_never_ends_is_not_counted():
    _, steps, _ = timings([(0, "INFO     default ➜ create: Executing"), (9, "make: *** Error 2")])
    assert steps == []


def test_main_passes_every_line_through_and_appends_the_report():
    ticks = iter(range(0, 1000, 10))
    out = io.StringIO()
    text = "".join(line + "\n" for _, line in LOG[:3]) + "other output\n"
    assert main([], stdin=io.StringIO(text), stdout=out, clock=lambda: next(ticks)) == 0
    assert out.getvalue().startswith(text)
    assert "  venv" in out.getvalue() and "ci timings:" in out.getvalue()
