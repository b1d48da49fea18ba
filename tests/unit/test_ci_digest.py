"""tools/ci_digest.py: after a red CI, the failed tasks (not the retries) are what gets printed last."""
from tools.ci_digest import clean, digest

LOG = """\
\x1b[32mfabric-ring3\x1b[0m \u279c \x1b[33mconverge\x1b[0m: Executed: Successful
  \u2502 TASK [Wait for the pings]
  \u2502 FAILED - RETRYING: [node1]: Wait for the pings (60 retries left).
  \u2502 ok: [node1]
  \u2502 TASK [The failover took less than 5 seconds]
  \u2502 fatal: [node1]: FAILED! => {
  \u2502     "msg": "200 packets transmitted, 21 received"
  \u2502 }
  \u2502 TASK [Show it]
  \u2502 ok: [node1] => {"msg": "node address 10.213.0.1"}
  \u2502 TASK [Next]
  \u2502 ok: [node1]
"""


def test_failed_task_with_its_message_and_header():
    out = digest([clean(l) for l in LOG.splitlines()])
    assert out[:4] == [
        "---- TASK [The failover took less than 5 seconds]",
        'fatal: [node1]: FAILED! => {',
        '    "msg": "200 packets transmitted, 21 received"',
        "}",
    ]


def test_retries_are_not_failures_and_the_block_stops_at_the_next_task():
    out = digest([clean(l) for l in LOG.splitlines()])
    assert not any("RETRYING" in l for l in out)
    assert "TASK [Show it]" not in out and "TASK [Next]" not in "\n".join(out)


def test_colours_and_molecule_frames_are_stripped():
    lines = [clean(l) for l in LOG.splitlines()]
    assert lines[0] == "fabric-ring3 \u279c converge: Executed: Successful"
    assert lines[1] == "TASK [Wait for the pings]"


def test_nothing_failed():
    assert digest(["TASK [a]", "ok: [node1]"]) == []


def test_failed_runner_runs_are_read_from_their_events(tmp_path):
    """A real ansible-runner run of a playbook that fails, and one that passes: the digest names the failed task, its
    host, message and stdout from the events, and leaves the successful run out."""
    from tools import runner_events
    from tools.ci_digest import runner_digest

    book = tmp_path / "book.yml"
    book.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        "    - name: Say something and fail\n"
        "      ansible.builtin.command: sh -c 'echo half-done; exit 3'\n"
        "      changed_when: false\n")
    good = tmp_path / "good.yml"
    good.write_text("- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
                    "    - name: Fine\n      ansible.builtin.debug: {msg: ok}\n")
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    localhost: {ansible_python_interpreter: \"{{ ansible_playbook_python }}\"}\n")
    bad_run = runner_events.run_playbook(str(book), str(inv), data_dir=str(tmp_path / "runs" / "bad"))
    meant = runner_events.run_playbook(str(book), str(inv), data_dir=str(tmp_path / "runs" / "meant"),
                                       expect_failure=True)   # a refusal a test provokes and checks itself
    assert meant.rc != 0
    good_run = runner_events.run_playbook(str(good), str(inv), data_dir=str(tmp_path / "runs" / "good"))
    assert bad_run.rc != 0 and good_run.rc == 0 and good_run.failures() == []
    assert [f["task"] for f in bad_run.failures()] == ["Say something and fail"]
    text = "\n".join(runner_digest(str(tmp_path / "runs")))
    assert "Say something and fail on localhost" in text
    assert "non-zero return code" in text and "stdout: half-done" in text
    assert "/bad/" in text and "/good/" not in text and "/meant/" not in text
