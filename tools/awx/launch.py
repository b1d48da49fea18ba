"""Launch a job template of awx/job_templates.yml exactly as AWX does, without AWX.

AWX runs every job through ansible-runner with a private data directory. This builds the same one:

- ``env/extravars``: the job template's extra_vars, the survey's answers (checked against the survey first, as AWX
  does at launch) and the ``awx_*`` variables AWX adds (job id, template name, launch type, user, project revision);
- ``env/cmdline``: ``--limit`` and ``--tags``, only where the template asks for them at launch (AWX ignores a prompt
  the template does not ask for; here it is refused, so a test cannot believe it limited a run that it did not);
- ``env/envvars``, ``env/settings``;
- ``project/``: the project (this checkout, as AWX's project sync would lay it);
- the inventory: its source is handed to ansible-runner as is. AWX imports a source into its database first;
  variables that use ``inventory_dir`` (the lab's model paths) would not survive that import - see README, AWX.

A workflow runs its steps in order, the next only when the one before succeeded, each with its own artifacts.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import yaml

from .. import runner_events
from . import survey as survey_mod

ROOT = survey_mod.ROOT
DEFAULT_INVENTORY = os.path.join("inventories", "sim")
DATA = os.path.join(ROOT, ".cache", "awx")


class Refused(ValueError):
    """The launch is refused before anything runs (AWX answers 400 to the launch request)."""


@dataclass
class Job:
    template: str
    run: runner_events.Run


@dataclass
class Launch:
    name: str
    data_dir: str
    jobs: List[Job]

    @property
    def rc(self) -> int:
        return next((j.run.rc or 1 for j in self.jobs if j.run.status != "successful"), 0)


def templates() -> Dict[str, Dict[str, Any]]:
    """Name -> job template or workflow (a workflow has `steps`) of awx/job_templates.yml."""
    data = survey_mod.load_templates()
    out = {jt["name"]: dict(jt) for jt in data.get("llmlab_awx_job_templates", [])}
    for wf in data.get("llmlab_awx_workflows", []):
        out[wf["name"]] = dict(wf)
    return out


def surveys() -> Dict[str, Any]:
    with open(survey_mod.SURVEYS, encoding="utf-8") as fh:
        return (yaml.safe_load(fh) or {}).get("llmlab_awx_surveys") or {}


def _revision() -> str:
    res = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True)
    return res.stdout.strip() if res.returncode == 0 else ""


def prepare(name: str, answers: Dict[str, str], limit: Optional[str] = None, tags: Optional[str] = None,
            ) -> List[Dict[str, Any]]:
    """The job(s) a launch runs - template, playbook, extra vars, cmdline - or Refused naming the question or the
    prompt at fault. Nothing is written or run here."""
    known = templates()
    if name not in known:
        raise Refused("no job template or workflow named %r (there are: %s)" % (name, ", ".join(known)))
    top = known[name]
    steps = [known[s] for s in top["steps"]] if "steps" in top else [top]
    if "steps" in top and answers:
        raise Refused("workflow %r has no survey: it takes no answers (%s)" % (name, ", ".join(sorted(answers))))
    for prompt, value in (("limit", limit), ("tags", tags)):
        if value and not top.get("ask_%s_on_launch" % prompt):
            raise Refused("%r does not ask for %s at launch (ask_%s_on_launch is false)" % (name, prompt, prompt))
    extra, errors = survey_mod.answers(surveys().get(name), answers) if "steps" not in top else ({}, [])
    if errors:
        raise Refused("; ".join(errors))
    jobs = []
    for jt in steps:
        cmdline: List[str] = []
        job_limit = limit or jt.get("limit")
        job_tags = tags or jt.get("job_tags")
        if job_limit:
            cmdline += ["--limit", job_limit]
        if job_tags:
            cmdline += ["--tags", job_tags]
        jobs.append({"template": jt["name"], "playbook": jt["playbook"], "cmdline": cmdline,
                     "extravars": dict(jt.get("extra_vars") or {}, **extra), "workflow": name if "steps" in top
                     else None})
    return jobs


def _progress_handler(job: str, say: Callable[[str], None]) -> Callable[[Dict[str, Any]], bool]:
    started = time.monotonic()

    def handle(event: Dict[str, Any]) -> bool:
        kind, data = event.get("event"), event.get("event_data") or {}
        stamp = "[%s %5.0fs]" % (job, time.monotonic() - started)
        if kind == "playbook_on_play_start":
            say("%s PLAY %s" % (stamp, data.get("play", "")))
        elif kind == "playbook_on_task_start":
            say("%s   %s" % (stamp, data.get("task", "")))
        elif kind in runner_events.FAILED and not data.get("ignore_errors"):
            for line in runner_events.describe(runner_events.failures([event])[0], limit=400).splitlines():
                say("%s     FAILED %s" % (stamp, line))
        elif kind == "playbook_on_stats":
            for host in sorted(set().union(*(data.get(k) or {} for k in ("ok", "changed", "failures", "dark")))):
                say("%s   %s ok=%s changed=%s failed=%s unreachable=%s" % (
                    stamp, host, (data.get("ok") or {}).get(host, 0), (data.get("changed") or {}).get(host, 0),
                    (data.get("failures") or {}).get(host, 0), (data.get("dark") or {}).get(host, 0)))
        return True  # keep every event in the artifacts

    return handle


def launch(name: str, answers: Optional[Dict[str, str]] = None, inventory: str = DEFAULT_INVENTORY,
           limit: Optional[str] = None, tags: Optional[str] = None, data_dir: Optional[str] = None,
           progress: Optional[Callable[[str], None]] = print) -> Launch:
    """Launch `name` with survey `answers` (strings, as a survey form sends them). Refused is raised before
    anything is written or run."""
    import ansible_runner  # imported here: `python -m tools.awx surveys` does not need it

    jobs = prepare(name, dict(answers or {}), limit=limit, tags=tags)
    inventory = os.path.abspath(os.path.join(ROOT, inventory))
    if not os.path.exists(inventory):
        raise Refused("inventory %s does not exist" % inventory)
    job_id = int(time.time() * 1000) % 10 ** 9
    data_dir = os.path.abspath(data_dir or os.path.join(DATA, "%s-%d" % (name.lower().replace(" ", "-"), job_id)))
    os.makedirs(os.path.join(data_dir, "env"), exist_ok=True)
    project = os.path.join(data_dir, "project")
    if not os.path.islink(project):
        os.symlink(ROOT, project)
    revision = _revision()
    done: List[Job] = []
    for i, job in enumerate(jobs):
        ident = "%d-%s" % (job_id + i, job["template"].lower().replace(" ", "-"))
        extravars = dict(job["extravars"], awx_job_id=job_id + i, awx_job_template_name=job["template"],
                         awx_job_launch_type="workflow" if job["workflow"] else "manual",
                         awx_user_name=getpass.getuser(), awx_project_revision=revision,
                         awx_inventory_name=os.path.relpath(inventory, ROOT))
        if job["workflow"]:
            extravars.update(awx_workflow_job_name=job["workflow"], awx_workflow_job_id=job_id)
        _write(data_dir, "env/extravars", json.dumps(extravars, indent=2, sort_keys=True))
        _write(data_dir, "env/cmdline", " ".join(shlex.quote(a) for a in job["cmdline"]))
        _write(data_dir, "env/envvars", json.dumps({
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
            "ANSIBLE_FORCE_COLOR": "False"}))
        _write(data_dir, "env/settings", json.dumps({"suppress_ansible_output": True}))
        if progress:
            progress("launch %s: %s %s" % (job["template"], job["playbook"], " ".join(job["cmdline"])))
        run = ansible_runner.run(private_data_dir=data_dir, ident=ident, playbook=job["playbook"],
                                 inventory=inventory, quiet=True,
                                 event_handler=_progress_handler(job["template"], progress) if progress else None)
        done.append(Job(job["template"], runner_events.Run.of(run)))
        if run.status != "successful":
            break
    return Launch(name, data_dir, done)


def _write(data_dir: str, rel: str, text: str) -> None:
    path = os.path.join(data_dir, rel)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    os.chmod(path, 0o600)  # answers may carry secrets, as AWX's do
