"""The built collection installs, its modules and filters run by FQCN, and plan.yml plans the lab inventory."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from .conftest import run


def _isolated_env(collections: str, tmp_path) -> dict:
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\ncollections_path = %s\nretry_files_enabled = False\n" % collections)
    return {"ANSIBLE_CONFIG": str(cfg), "ANSIBLE_COLLECTIONS_PATH": collections}


def _adhoc_json(out: str) -> dict:
    assert "=>" in out, out
    return json.loads(out.split("=>", 1)[1])


def test_modules_run_by_fqcn_from_the_installed_tarball(installed_collection: str, tmp_path) -> None:
    env = _isolated_env(installed_collection, tmp_path)
    res = run(["ansible", "localhost", "-o", "-m", "llmlab.cluster.fabric_plan", "-a",
               json.dumps({"topology": "ring", "nodes": [{"name": "gx10-%s" % c, "profile": "gb10"} for c in "abc"]})],
              cwd=str(tmp_path), env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    fabric = _adhoc_json(res.stdout)["fabric"]
    assert fabric["routing"] == "static" and len(fabric["links"]) == 6
    assert fabric["hosts"]["gx10-a"]["node_address"] == "10.213.0.1"

    res = run(["ansible", "localhost", "-o", "-m", "llmlab.cluster.parallel_plan", "-a",
               json.dumps({"topology": "ring", "model": "Qwen/Qwen3-235B-A22B", "quant": "fp8",
                           "nodes": [{"name": "gx10-%s" % c, "profile": "gb10"} for c in "abc"]})],
              cwd=str(tmp_path), env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    plan = _adhoc_json(res.stdout)["plan"]
    assert (plan["backend"], plan["tensor_parallel"], plan["pipeline_parallel"], plan["fits"]) == \
        ("vllm_ray", 1, 3, True)
    assert plan["candidates"][0]["backend"] == "vllm_ray"


def test_gguf_info_checks_the_lab_model_and_refuses_other_files(installed_collection: str, tmp_path) -> None:
    from tools.simlab.inputs import pinned_sha256
    from tools.tiny_gguf import write

    env = _isolated_env(installed_collection, tmp_path)
    model = str(tmp_path / "tiny.gguf")
    sha = write(model)

    def info(**args: str) -> tuple:
        res = run(["ansible", "localhost", "-o", "-m", "llmlab.cluster.gguf_info", "-a", json.dumps(args)],
                  cwd=str(tmp_path), env=env)
        return res.returncode, _adhoc_json(res.stdout)

    rc, out = info(path=model, sha256=pinned_sha256())
    assert rc == 0 and (out["architecture"], out["block_count"], out["sha256"]) == ("llama", 12, sha), out
    rc, out = info(path=model, sha256="0" * 64)
    assert rc != 0 and "expected " + "0" * 64 in out["msg"] and out["sha256"] == sha
    page = tmp_path / "page.gguf"
    page.write_text("<html>404</html>")
    rc, out = info(path=str(page))
    assert rc != 0 and "is not a GGUF file" in out["msg"]


def test_module_failure_names_host_variable_and_fix(installed_collection: str, tmp_path) -> None:
    env = _isolated_env(installed_collection, tmp_path)
    res = run(["ansible", "localhost", "-o", "-m", "llmlab.cluster.fabric_plan", "-a",
               json.dumps({"topology": "direct", "cables": [["a:enp1s0f1np1", "b:eth7"]],
                           "nodes": [{"name": "a", "profile": "gb10"}, {"name": "b", "profile": "gb10"}]})],
              cwd=str(tmp_path), env=env)
    assert res.returncode != 0
    out = _adhoc_json(res.stdout)
    assert out["error"]["host"] == "b" and out["error"]["variable"] == "llmlab_cables"
    assert "Fix: use one of enp1s0f0np0" in out["msg"]


@pytest.mark.parametrize("plugin,kind", [
    ("llmlab.cluster.fabric_plan", "module"), ("llmlab.cluster.parallel_plan", "module"),
    ("llmlab.cluster.node_facts", "module"), ("llmlab.cluster.ping_matrix", "filter"),
    ("llmlab.cluster.fabric", "role"), ("llmlab.cluster.preflight", "role"),
    ("llmlab.cluster.container_runtime", "role"), ("llmlab.cluster.contract_errors", "filter"),
    ("llmlab.cluster.inventory_nodes", "filter"), ("llmlab.cluster.rpc_servers", "filter"),
    ("llmlab.cluster.dllama_workers", "filter"), ("llmlab.cluster.comm_env", "filter"),
    ("llmlab.cluster.plan_table", "filter"), ("llmlab.cluster.plan", "role"),
    ("llmlab.cluster.gguf_info", "module"), ("llmlab.cluster.llm_benchmark", "module"),
    ("llmlab.cluster.llamacpp_builds", "filter"), ("llmlab.cluster.llamacpp_rpc", "role"),
    ("llmlab.cluster.verify", "role"), ("llmlab.cluster.benchmark", "role"),
])
def test_docs_render(installed_collection: str, tmp_path, plugin: str, kind: str) -> None:
    res = run(["ansible-doc", "-t", kind, plugin], cwd=str(tmp_path), env=_isolated_env(installed_collection, tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ERROR" not in res.stderr


def test_filters_in_templates(installed_collection: str, tmp_path) -> None:
    playbook = tmp_path / "filters.yml"
    playbook.write_text(textwrap.dedent("""\
        - hosts: localhost
          gather_facts: false
          vars:
            nodes: [{name: n1, profile: sim}, {name: n2, profile: sim}, {name: n3, profile: sim}]
          tasks:
            - llmlab.cluster.fabric_plan: {nodes: "{{ nodes }}", topology: ring}
              register: f
            - llmlab.cluster.parallel_plan:
                nodes: "{{ nodes }}"
                topology: ring
                model: llmlab/tiny-llama-test
                quant: fp16
                backend: llamacpp_rpc
                pipeline_parallel: 3
              register: p
            - ansible.builtin.assert:
                that:
                  - (p.plan | llmlab.cluster.rpc_servers(f.fabric)) == '10.213.0.2:50052,10.213.0.3:50052'
                  - (f.fabric | llmlab.cluster.comm_env('n2')).VLLM_HOST_IP == '10.213.0.2'
                  - "(f.fabric | llmlab.cluster.plan_table(p.plan)) | select('match', '^why: chosen: llamacpp_rpc')
                    | list | length == 1"
            - name: a plan error reaches the user as a filter error
              ansible.builtin.debug:
                msg: "{{ p.plan | llmlab.cluster.dllama_workers(f.fabric) }}"
              register: bad
              ignore_errors: true  # the assertion below is the test
            - ansible.builtin.assert:
                that:
                  - bad is failed
                  - "'not distributed_llama' in bad.msg"
        """))
    res = run(["ansible-playbook", str(playbook)], cwd=str(tmp_path), env=_isolated_env(installed_collection, tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "failed=0" in res.stdout


# --- playbooks/plan.yml on the documented lab inventory ------------------------------------------------------

def _unreachable_override(tmp_path) -> str:
    """The lab's hosts pointed at a closed local port: any task that tried to reach a host would fail."""
    inv = tmp_path / "override.yml"
    inv.write_text(textwrap.dedent("""\
        all:
          children:
            llmlab_nodes:
              hosts:
                gx10-a: {ansible_host: 127.0.0.1, ansible_port: 1}
                gx10-b: {ansible_host: 127.0.0.1, ansible_port: 1}
                gx10-c: {ansible_host: 127.0.0.1, ansible_port: 1}
        """))
    return str(inv)


def _plan(tmp_path, *extra: str) -> "object":
    return run(["ansible-playbook", "-i", "inventories/lab", "-i", _unreachable_override(tmp_path),
                "playbooks/plan.yml", "-e", "llmlab_plan_file=%s" % (tmp_path / "plan.json")] + list(extra))


def test_plan_playbook_on_the_lab_inventory(tmp_path) -> None:
    res = _plan(tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "unreachable=0" in res.stdout and "failed=0" in res.stdout
    for words in ("fabric: ring, routing static, pool 10.213.0.0/24", "model Qwen/Qwen3-235B-A22B in fp8",
                  "why: chosen: vllm_ray TP=1 PP=3", "rejected: TP=3 does not divide the 64 attention heads"):
        assert words in res.stdout
    with open(tmp_path / "plan.json", encoding="utf-8") as fh:
        data = json.load(fh)
    assert sorted(data) == ["fabric", "plan"]
    assert sorted(data["fabric"]["hosts"]) == ["gx10-a", "gx10-b", "gx10-c"]
    assert data["fabric"]["links"][0]["a"] == "gx10-a:enp1s0f0np0"  # the inventory's NVIDIA cabling
    assert data["plan"]["backend"] == "vllm_ray" and data["plan"]["fits"] is True
    # a second run changes nothing
    again = _plan(tmp_path)
    assert again.returncode == 0 and "changed=0" in again.stdout.split("PLAY RECAP")[1]


def test_plan_playbook_in_check_mode_writes_nothing(tmp_path) -> None:
    res = _plan(tmp_path, "--check")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "why: chosen: vllm_ray" in res.stdout
    assert not os.path.exists(tmp_path / "plan.json")


@pytest.mark.parametrize("extra,words", [
    (["-e", "{\"llmlab_cables\": [[\"gx10-a:enp1s0f0np0\", \"gx10-b:eth9\"]]}"],
     "[host gx10-b, variable llmlab_cables]"),
    (["-e", "llmlab_quant=q1_xs"], "variable llmlab_quant"),
    (["-e", "llmlab_model=deepseek-ai/DeepSeek-R1", "-e", "llmlab_quant=bf16"], "no plan fits deepseek-ai/DeepSeek-R1"),
    (["-e", "llmlab_fabric_pool=192.168.1.0/25"], "overlaps the management network"),
    (["-e", "llmlab_topology=direct"], "topology direct needs 2 nodes, the inventory has 3"),
])
def test_plan_playbook_fails_clearly_on_bad_input(tmp_path, extra, words) -> None:
    res = _plan(tmp_path, *extra)
    assert res.returncode != 0
    assert words in res.stdout, res.stdout
    assert "Fix:" in res.stdout
    assert "unreachable=0" in res.stdout
    assert not os.path.exists(tmp_path / "plan.json")


def test_unknown_profile_is_refused_by_the_role_contract(tmp_path) -> None:
    res = _plan(tmp_path, "-e", "llmlab_profile=dgx-h100")
    assert res.returncode != 0
    assert "llmlab_profile" in res.stdout and "dgx-h100" in res.stdout and "gb10" in res.stdout


def test_site_runs_the_stages_in_order_and_every_task_carries_its_role_tag(tmp_path) -> None:
    res = run(["ansible-playbook", "-i", "inventories/lab", "site.yml", "--list-tasks"])
    assert res.returncode == 0, res.stdout + res.stderr
    plays = [l.split(": ", 1)[1].split("\t")[0] for l in res.stdout.splitlines() if l.strip().startswith("play #")]
    assert plays[0].startswith("Preflight")
    order = ["Apply the cluster fabric", "Install and configure the container runtime", "Deploy llama.cpp RPC",
             "Verify the serving cluster", "Benchmark the cluster"]
    assert [plays.index(p) for p in order] == sorted(plays.index(p) for p in order), plays
    for line in (l.strip() for l in res.stdout.splitlines() if "TAGS: [" in l and "llmlab.cluster." in l):
        name, _, tags = line.rpartition("TAGS: [")
        role = name.split(" : ")[0].split(".")[-1]
        assert role in tags, "task without its role's tag: %s" % line
    assert "Check, learn and plan\tTAGS: [always, preflight]" in res.stdout
    for role in ("plan", "preflight", "fabric", "container_runtime", "llamacpp_rpc", "verify", "benchmark"):
        res = run(["ansible-playbook", "-i", "inventories/lab", "playbooks/%s.yml" % role, "--list-tasks"])
        assert res.returncode == 0, res.stdout + res.stderr
