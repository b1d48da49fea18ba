"""AWX without AWX: the surveys generated from the argument specs, and launches of the job templates.

    python -m tools.awx surveys [--check]
    python -m tools.awx launch NAME [-i INVENTORY] [-a VAR=VALUE ...] [--limit HOSTS] [--tags TAGS] [--data DIR]
    python -m tools.awx list

`launch` builds the private data directory AWX would (env/extravars with the survey answers and awx_* variables,
env/cmdline with --limit and --tags, inventory/, project/) and runs it with ansible_runner, one progress line per
task; the runner's artifacts (job_events/, status, rc, stdout) stay in the data directory. It exits with the
playbook's rc, or 2 when the survey refuses an answer (before anything runs).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import launch, survey


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.awx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_surveys = sub.add_parser("surveys", help="write awx/surveys.yml from the argument specs")
    p_surveys.add_argument("--check", action="store_true", help="exit 1 when awx/surveys.yml is out of date")
    sub.add_parser("list", help="the job templates and workflows, with their surveys' variables")
    p_launch = sub.add_parser("launch", help="launch a job template or workflow as AWX does, through ansible-runner")
    p_launch.add_argument("name", help="a job template or workflow name of awx/job_templates.yml")
    p_launch.add_argument("-i", "--inventory", default=launch.DEFAULT_INVENTORY,
                          help="inventory directory or file (AWX: the inventory's source); default %(default)s")
    p_launch.add_argument("-a", "--answer", action="append", default=[], metavar="VAR=VALUE",
                          help="a survey answer (repeat); multiselect answers are comma-separated")
    p_launch.add_argument("--limit", help="hosts (only where the template asks for a limit at launch)")
    p_launch.add_argument("--tags", help="tags (only where the template asks for tags at launch)")
    p_launch.add_argument("--data", help="the private data directory (default: a new one under .cache/awx/)")
    p_launch.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)

    if args.command == "surveys":
        text = survey.render(survey.generate())
        if args.check:
            with open(survey.SURVEYS, encoding="utf-8") as fh:
                if fh.read() != text:
                    print("awx/surveys.yml is not what the argument specs give: run `make awx-surveys`")
                    return 1
            print("awx/surveys.yml agrees with the argument specs")
            return 0
        with open(survey.SURVEYS, "w", encoding="utf-8") as fh:
            fh.write(text)
        print("wrote %s" % survey.SURVEYS)
        return 0
    if args.command == "list":
        for jt in launch.templates().values():
            print("%-20s %-34s %s" % (jt["name"], jt.get("playbook") or " -> ".join(jt.get("steps", [])),
                                      " ".join(jt.get("survey") or [])))
        return 0
    answers = {}
    for item in args.answer:
        var, sep, value = item.partition("=")
        if not sep:
            parser.error("an answer is VAR=VALUE, got %r" % item)
        answers[var] = value
    try:
        result = launch.launch(args.name, answers, inventory=args.inventory, limit=args.limit, tags=args.tags,
                               data_dir=args.data, progress=None if args.quiet else print)
    except launch.Refused as exc:
        print("refused before anything ran: %s" % exc, file=sys.stderr)
        return 2
    for job in result.jobs:
        print("%s: %s (rc %s), artifacts %s" % (job.template, job.run.status, job.run.rc, job.run.artifacts))
    return result.rc


if __name__ == "__main__":
    sys.exit(main())
