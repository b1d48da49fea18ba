"""The AWX config-as-code: surveys generated from the argument specs and valid under AWX's rules, the launcher's
survey checks (before anything runs), and the job templates' references."""

from __future__ import annotations

import copy
import os

import pytest
import yaml

from ansible_collections.llmlab.cluster.plugins.module_utils import backends, catalog
from tools.awx import launch, survey

ROOT = survey.ROOT


def _surveys():
    with open(survey.SURVEYS, encoding="utf-8") as fh:
        return yaml.safe_load(fh)["llmlab_awx_surveys"]


def test_the_committed_surveys_are_what_the_argument_specs_give() -> None:
    with open(survey.SURVEYS, encoding="utf-8") as fh:
        assert fh.read() == survey.render(survey.generate()), "run `make awx-surveys`"


@pytest.mark.parametrize("template", sorted(_surveys()))
def test_every_survey_passes_awx_rules(template) -> None:
    assert survey.validate_survey(_surveys()[template]) == []


@pytest.mark.parametrize("template", sorted(_surveys()))
def test_every_question_agrees_with_its_argument_spec(template) -> None:
    """Checked against the spec directly, not through the generator's mapping."""
    opts = survey.options()
    for q in _surveys()[template]["spec"]:
        opt = opts[q["variable"]]
        kind = opt.get("type", "str")
        assert q["required"] is bool(opt.get("required")), q["variable"]
        if opt.get("no_log"):
            assert q["type"] == "password" and q.get("default", "") == "", q["variable"]
            continue
        assert q["type"] != "password", q["variable"]
        if kind == "int":
            assert q["type"] == "integer" and q.get("default", "") in ("", opt.get("default")), q["variable"]
            assert ("default" in opt) == (q.get("default", "") != ""), q["variable"]
        elif kind == "bool":
            assert q["choices"] == ["true", "false"] and q["default"] == str(opt["default"]).lower()
        elif opt.get("choices"):
            assert q["type"] == "multiplechoice" and q["choices"] == [str(c) for c in opt["choices"]], q["variable"]
            assert q["default"] == str(opt["default"]) and q["default"] in q["choices"], q["variable"]
        else:
            assert q["type"] == "text" and "choices" not in q, q["variable"]
            assert q.get("default", "") == ("" if opt.get("default") is None else str(opt["default"])), q["variable"]


def test_the_specs_choices_are_the_catalogs_and_the_registrys() -> None:
    opts = survey.options()
    assert set(opts["llmlab_quant"]["choices"]) == set(catalog.QUANTS) | set(catalog.QUANT_ALIASES)
    assert opts["llmlab_backend"]["choices"] == list(backends.CHOICES)


def test_a_variable_two_roles_declare_differently_is_an_error(tmp_path) -> None:
    for role, default in (("a", 1), ("b", 2)):
        path = tmp_path / "roles" / role / "meta"
        path.mkdir(parents=True)
        (path / "argument_specs.yml").write_text(yaml.safe_dump(
            {"argument_specs": {"main": {"options": {"llmlab_x": {"type": "int", "default": default}}}}}))
    with pytest.raises(survey.SurveyError, match="llmlab_x is declared differently"):
        survey.options(str(tmp_path))


GOOD = {"name": "s", "description": "d", "spec": [
    {"question_name": "Backend", "variable": "llmlab_backend", "type": "multiplechoice", "required": False,
     "choices": ["auto", "none"], "default": "auto"},
    {"question_name": "Context", "variable": "llmlab_context_tokens", "type": "integer", "required": False,
     "default": 8192, "min": 1},
    {"question_name": "Key", "variable": "llmlab_api_key", "type": "password", "required": False, "default": ""}]}


def _with(i, **change):
    bad = copy.deepcopy(GOOD)
    for k, v in change.items():
        if v is None:
            bad["spec"][i].pop(k)
        else:
            bad["spec"][i][k] = v
    return bad


@pytest.mark.parametrize("bad,words", [
    (_with(0, default="vllm"), "the default ['vllm'] is not one of the choices"),
    (_with(0, choices=["auto", "auto"], default="auto"), "the choices repeat"),
    (_with(0, choices=None), "needs a list of string choices"),
    (_with(1, variable="llmlab_backend"), "variable llmlab_backend is asked twice"),
    (_with(1, required=None), "required is required"),
    (_with(1, type="number"), "type 'number' is not one of"),
    (_with(1, default="8k"), "the default '8k' is not an integer"),
    (_with(1, min=0.5), "min must be an integer"),
    (_with(1, variable="llmlab-context"), "is not a valid variable name"),
    (_with(2, default="hunter2"), "a password question has no default"),
    (_with(2, choices=["a"]), "only multiplechoice and multiselect questions have choices"),
    ({"name": "s", "description": "d", "spec": []}, "non-empty list of questions"),
])
def test_awx_survey_rules_name_the_question(bad, words) -> None:
    assert survey.validate_survey(GOOD) == []
    errors = survey.validate_survey(bad)
    assert any(words in e for e in errors), errors


def test_answers_are_checked_and_typed_as_awx_does() -> None:
    extra, errors = survey.answers(GOOD, {"llmlab_context_tokens": "4096"})
    assert errors == [] and extra == {"llmlab_backend": "auto", "llmlab_context_tokens": 4096}
    _, errors = survey.answers(GOOD, {"llmlab_backend": "sglang"})
    assert errors == ["question 'Backend' (llmlab_backend): 'sglang' is not one of its choices: auto, none"]
    _, errors = survey.answers(GOOD, {"llmlab_context_tokens": "0"})
    assert "outside 1.." in errors[0] and "'Context'" in errors[0]
    _, errors = survey.answers(GOOD, {"llmlab_context_tokens": "lots"})
    assert "'lots' is not an integer" in errors[0]
    _, errors = survey.answers(GOOD, {"llmlab_modle": "x"})
    assert errors[0].startswith("llmlab_modle is not a question of this survey")
    required = _with(0, required=True, default="")
    _, errors = survey.answers(required, {})
    assert errors == ["question 'Backend' (llmlab_backend) is required"]
    extra, _ = survey.answers(GOOD, {})
    assert "llmlab_api_key" not in extra  # an optional question without a default leaves the inventory's value


def test_job_templates_point_at_playbooks_and_workflows_at_job_templates() -> None:
    known = launch.templates()
    names = [jt["name"] for jt in survey.load_templates()["llmlab_awx_job_templates"]]
    assert len(names) == len(set(names))
    for jt in known.values():
        if "steps" in jt:
            assert all(s in known and "steps" not in known[s] for s in jt["steps"]), jt["name"]
        else:
            assert os.path.isfile(os.path.join(ROOT, jt["playbook"])), jt["playbook"]
    stages = {jt["playbook"] for jt in known.values() if "playbook" in jt}
    for stage in ("fabric", "container_runtime", "backend", "verify", "benchmark", "plan"):
        assert "playbooks/%s.yml" % stage in stages
    assert known["Fabric"]["ask_limit_on_launch"] and known["Fabric"]["ask_tags_on_launch"]
    assert known["Re-cable and verify"]["steps"] == ["Fabric", "Verify"]


@pytest.mark.parametrize("name,answers,limit,words", [
    ("Deploy", {"llmlab_model": "llmlab/tiny-llama-test", "llmlab_quant": "int3"}, None,
     "question 'Quant' (llmlab_quant): 'int3' is not one of its choices"),
    ("Deploy", {"llmlab_quant": "fp16"}, None, "question 'Model' (llmlab_model) is required"),
    ("Deploy", {"llmlab_model": "m"}, "node2", "'Deploy' does not ask for limit at launch"),
    ("Fabric", {"llmlab_backend": "vllm_ray"}, None, "this job template has no survey"),
    ("Re-cable and verify", {"llmlab_backend": "vllm_ray"}, None, "workflow 'Re-cable and verify' has no survey"),
    ("Deploy everything", {}, None, "no job template or workflow named 'Deploy everything'"),
])
def test_a_launch_the_survey_refuses_runs_nothing(tmp_path, name, answers, limit, words) -> None:
    data = tmp_path / "job"
    with pytest.raises(launch.Refused, match=words.replace("(", r"\(").replace(")", r"\)")):
        launch.launch(name, answers, limit=limit, data_dir=str(data), progress=None)
    assert not data.exists()  # no private data directory: ansible-runner never started


def test_a_launch_builds_awxs_private_data_directory() -> None:
    jobs = launch.prepare("Fabric", {}, limit="node2", tags="fabric")
    assert jobs == [{"template": "Fabric", "playbook": "playbooks/fabric.yml", "cmdline": [
        "--limit", "node2", "--tags", "fabric"], "extravars": {}, "workflow": None}]
    jobs = launch.prepare("Deploy", {"llmlab_model": "llmlab/tiny-llama-test", "llmlab_context_tokens": "2048"})
    assert jobs[0]["extravars"]["llmlab_context_tokens"] == 2048 and jobs[0]["extravars"]["llmlab_backend"] == "auto"
    flow = launch.prepare("Re-cable and verify", {})
    assert [j["template"] for j in flow] == ["Fabric", "Verify"] and flow[0]["workflow"] == "Re-cable and verify"
