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
    ("llmlab.cluster.inventory_nodes", "filter"), ("llmlab.cluster.backend_deploy", "filter"),
    ("llmlab.cluster.plan_table", "filter"), ("llmlab.cluster.plan", "role"),
    ("llmlab.cluster.gguf_info", "module"), ("llmlab.cluster.llm_benchmark", "module"),
    ("llmlab.cluster.llamacpp_rpc", "role"), ("llmlab.cluster.cluster_defaults", "role"),
    ("llmlab.cluster.verify", "role"), ("llmlab.cluster.benchmark", "role"),
    ("llmlab.cluster.service_memory", "module"), ("llmlab.cluster.hf_model_info", "module"),
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
                fabric: "{{ f.fabric }}"
              register: p
            - ansible.builtin.set_fact:
                published:
                  fabric: "{{ f.fabric }}"
                  plan: "{{ p.plan }}"
                hv:
                  n1: {llmlab_profile: sim, llmlab_node: {cpus: 2, arch: x86_64}}
                  n2: {llmlab_profile: sim, llmlab_node: {cpus: 2, arch: x86_64}}
                  n3: {llmlab_profile: sim, llmlab_node: {cpus: 2, arch: x86_64}, llmlab_llamacpp_threads: 1}
                opts: {version: v1, source: archive, cmake_flags: [], accelerator: "", threads: 0,
                       rpc_binary: ggml-rpc-server, prefix: /opt/x, conf_dir: /etc/x, model_path: /m.gguf, slots: 1,
                       server_args: [], rpc_cache: false, rpc_cache_dir: /c}
            - ansible.builtin.set_fact:
                deployed: "{{ published | llmlab.cluster.backend_deploy(hv, opts) }}"
            - ansible.builtin.assert:
                that:
                  - deployed.plan.services.n3['rpc-server'].argv == ['/opt/x/current/bin/ggml-rpc-server', '-H',
                    '10.213.0.3', '-p', '50052', '-t', '1']
                  - "'10.213.0.2:50052,10.213.0.3:50052' in deployed.plan.services.n1['llama-server'].argv"
                  - "(f.fabric | llmlab.cluster.plan_table(p.plan)) | select('match', '^why: chosen: llamacpp_rpc')
                    | list | length == 1"
            - name: a plan error reaches the user as a filter error
              ansible.builtin.debug:
                msg: "{{ published | llmlab.cluster.backend_deploy(hv | combine({'n2': {'llmlab_profile': 'sim',
                  'llmlab_node': {'cpus': 2}, 'llmlab_llamacpp_version': 'v2'}}), opts) }}"
              register: bad
              ignore_errors: true  # the assertion below is the test
            - ansible.builtin.assert:
                that:
                  - bad is failed
                  - "'RPC needs the same build on every node' in bad.msg"
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
    for words in ("fabric: ring, routing static, pool 10.213.0.0/24", "model Qwen/Qwen3-235B-A22B in q4_k_m",
                  "why: chosen: llamacpp_rpc TP=1 PP=2",
                  "rejected: distributed_llama cannot load q4_k_m weights"):
        assert words in res.stdout
    with open(tmp_path / "plan.json", encoding="utf-8") as fh:
        data = json.load(fh)
    assert sorted(data) == ["fabric", "plan"]
    assert sorted(data["fabric"]["hosts"]) == ["gx10-a", "gx10-b", "gx10-c"]
    assert data["fabric"]["links"][0]["a"] == "gx10-a:enp1s0f0np0"  # the inventory's NVIDIA cabling
    assert data["plan"]["backend"] == "llamacpp_rpc" and data["plan"]["fits"] is True
    # a second run changes nothing
    again = _plan(tmp_path)
    assert again.returncode == 0 and "changed=0" in again.stdout.split("PLAY RECAP")[1]


def test_plan_playbook_in_check_mode_writes_nothing(tmp_path) -> None:
    res = _plan(tmp_path, "--check")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "why: chosen: llamacpp_rpc" in res.stdout
    assert not os.path.exists(tmp_path / "plan.json")


def test_auto_on_the_lab_inventory_plans_a_backend_that_a_role_deploys(installed_collection: str, tmp_path) -> None:
    """inventories/lab with llmlab_backend: auto - the chosen backend has a role in the installed collection with the
    four entry points, and the backend stage would run that role; candidates without a role are never chosen."""
    res = _plan(tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    with open(tmp_path / "plan.json", encoding="utf-8") as fh:
        plan = json.load(fh)["plan"]
    backend = plan["backend"]
    role = os.path.join(installed_collection, "ansible_collections", "llmlab", "cluster", "roles", backend)
    for entry in ("main", "validate", "verify", "absent"):
        assert os.path.isfile(os.path.join(role, "tasks", entry + ".yml")), (backend, entry)
    assert backend in plan["deployable_backends"] and plan["backends"][backend]["deployable"]
    assert plan["services"][plan["head"]] and all(plan["services"][w] for w in plan["workers"])
    assert plan["candidates"][0]["backend"] == backend and plan["candidates"][0]["deployable"]
    # deployable means: the installed collection has that backend's role
    assert all(c["deployable"] == os.path.isfile(os.path.join(os.path.dirname(role), c["backend"], "tasks", "main.yml"))
               for c in plan["candidates"])
    listed = run(["ansible-playbook", "-i", "inventories/lab", "playbooks/backend.yml", "--list-tasks"])
    assert listed.returncode == 0 and "Deploy the plan's backend" in listed.stdout


def test_a_node_count_distributed_llama_cannot_split_fails_in_the_plan(tmp_path) -> None:
    res = _plan(tmp_path, "-e", "llmlab_backend=distributed_llama", "-e", "llmlab_tensor_parallel=3")
    assert res.returncode != 0
    assert "distributed-llama needs a power-of-two node count, not 3" in res.stdout, res.stdout[-2000:]
    assert "Fix:" in res.stdout
    assert not os.path.exists(tmp_path / "plan.json")


@pytest.mark.parametrize("extra,words", [
    (["-e", "{\"llmlab_cables\": [[\"gx10-a:enp1s0f0np0\", \"gx10-b:eth9\"]]}"],
     "[host gx10-b, variable llmlab_cables]"),
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


@pytest.mark.parametrize("var,value,listed", [
    ("llmlab_profile", "dgx-h100", "gb10"),
    ("llmlab_quant", "q1_xs", "q4_k_m"),   # the spec's choices are the catalog's (tests/unit/test_awx.py)
    ("llmlab_backend", "sglang", "llamacpp_rpc"),
])
def test_a_value_outside_the_choices_is_refused_by_the_role_contract(tmp_path, var, value, listed) -> None:
    res = _plan(tmp_path, "-e", "%s=%s" % (var, value))
    assert res.returncode != 0
    assert var in res.stdout and value in res.stdout and listed in res.stdout, res.stdout[-2000:]
    assert not os.path.exists(tmp_path / "plan.json")


def test_site_runs_the_stages_in_order_and_every_task_carries_its_role_tag(tmp_path) -> None:
    res = run(["ansible-playbook", "-i", "inventories/lab", "site.yml", "--list-tasks"])
    assert res.returncode == 0, res.stdout + res.stderr
    plays = [l.split(": ", 1)[1].split("\t")[0] for l in res.stdout.splitlines() if l.strip().startswith("play #")]
    assert plays[0].startswith("Preflight")
    order = ["Apply the cluster fabric", "Install and configure the container runtime",
             "The plan's backend, and nothing of any other",
             "Verify the serving cluster", "Benchmark the cluster"]
    assert [plays.index(p) for p in order] == sorted(plays.index(p) for p in order), plays
    for line in (l.strip() for l in res.stdout.splitlines() if "TAGS: [" in l and "llmlab.cluster." in l):
        name, _, tags = line.rpartition("TAGS: [")
        role = name.split(" : ")[0].split(".")[-1]
        assert role in tags, "task without its role's tag: %s" % line
    assert "Check, learn and plan\tTAGS: [always, preflight]" in res.stdout
    for role in ("plan", "preflight", "fabric", "container_runtime", "backend", "llamacpp_rpc", "verify", "benchmark"):
        res = run(["ansible-playbook", "-i", "inventories/lab", "playbooks/%s.yml" % role, "--list-tasks"])
        assert res.returncode == 0, res.stdout + res.stderr
