"""The experience store (memory/): records, retrieval, locking, embedders, export/import, the CLI.

Fast: the hashing embedder everywhere except one test that loads all-MiniLM-L6-v2 once.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dexforge.memory.cli import app
from dexforge.memory.embeddings import HashingEmbedder, MiniLMEmbedder, ModelIntegrityError, OpenAIEmbedder
from dexforge.memory.records import (
    SCHEMA_VERSION,
    Critique,
    FailureRecord,
    RecordError,
    SubtaskRecord,
    TaskMetrics,
    TaskRecord,
    load_record,
    where_object,
)
from dexforge.memory.store import (
    EmbedderMismatchError,
    ExperienceStore,
    MemoryLockedError,
    MemorySettings,
    RecordNotFoundError,
)

REQUESTS = [
    "lift the red cube off the table",
    "put the tennis ball into the bowl",
    "open the top drawer of the cabinet",
    "rotate the cube ninety degrees in the hand",
    "push the mug to the left edge of the table",
    "pick up the banana and hold it above the plate",
    "place the apple on the wooden plate",
    "turn the door handle and open the door",
    "stack the small cube on the big cube",
    "pour water from the bottle into the cup",
    "flip the pancake with the spatula",
    "press the red button on the panel",
    "unscrew the lid of the jar",
    "slide the book onto the shelf",
    "grasp the hammer by its handle",
    "spin the pen between the fingers",
    "insert the peg into the round hole",
    "throw the ball into the basket",
    "wipe the table with the sponge",
    "hand over the scissors handle first",
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ExperienceStore]:
    with ExperienceStore.open(tmp_path / "chroma", embedder="hashing") as s:
        yield s


def _task(request: str, **kw) -> TaskRecord:
    return TaskRecord(request=request, status=kw.pop("status", "succeeded"), **kw)


def _subtask(tmp_path: Path, name: str, **kw) -> SubtaskRecord:
    ckpt = tmp_path / f"{name}.pt"
    ckpt.write_bytes(b"weights")
    defaults = {"controller": "rl", "obs_size": 60, "act_size": 24, "success_rate": 0.9, "checkpoint": str(ckpt)}
    return SubtaskRecord(name=name, **{**defaults, **kw})


def _py(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_records_round_trip_with_metadata_filters(store: ExperienceStore, tmp_path: Path) -> None:
    lift = _task(
        "lift the red cube",
        family="lift",
        objects=["cube"],
        critiques=[Critique(findings=["cube floats"], corrections=[{"kind": "move"}], verdict="revise")],
        metrics=TaskMetrics(task_success_rate=0.8, env_steps=150_000),
        spec_yaml="name: lift_cube\n",
    )
    place = _task("put the cube in the bowl", family="place", objects=["cube", "bowl"], status="failed")
    ids = [store.add_task(lift), store.add_task(place)]
    sub_id = store.add_subtask(_subtask(tmp_path, "grasp", description="grasp the cube", objects=["cube"]))
    fail_id = store.add_failure(FailureRecord(stage="train", reason="reward is NaN", objects=["bowl"]))
    assert [store.get(i).record for i in ids] == [lift, place]
    assert store.get(sub_id).kind == "subtask" and store.get(fail_id).record.reason == "reward is NaN"

    def ids_of(**kw) -> set[str]:
        return {h.id for h in store.search("cube", k=10, **kw)}

    assert ids_of(where={"family": "place"}) == {ids[1]}
    assert ids_of(where={"outcome": "failed"}) == {ids[1]}
    assert ids_of(where=where_object("bowl")) == {ids[1]}
    assert ids_of(where={"objects": "bowl,cube"}) == {ids[1]}
    assert ids_of(where={"task_success_rate": {"$gte": 0.5}}) == {ids[0]}
    assert {h.id for h in store.search("bowl", "failure", where=where_object("bowl"))} == {fail_id}
    assert [e.id for e in store.list("task")] == ids[::-1]  # newest first
    assert store.stats()["counts"] == {"task": 2, "subtask": 1, "failure": 1}


def test_similar_subtasks_for_warm_starts(store: ExperienceStore, tmp_path: Path) -> None:
    good = store.add_subtask(_subtask(tmp_path, "grasp_cube", description="grasp the cube with the fingers"))
    store.add_subtask(_subtask(tmp_path, "weak", description="grasp the cube", success_rate=0.1))
    store.add_subtask(_subtask(tmp_path, "wide", description="grasp the cube", obs_size=61))
    store.add_subtask(_subtask(tmp_path, "other", description="grasp the cube", controller="scripted"))
    store.add_subtask(_subtask(tmp_path, "none", description="grasp the cube", checkpoint=None))
    gone = _subtask(tmp_path, "gone", description="grasp the cube")
    Path(gone.checkpoint or "").unlink()
    store.add_subtask(gone)
    hits = store.similar_subtasks("rl", 60, 24, "grasp a cube", k=5)
    assert [h.id for h in hits] == [good]
    assert hits[0].similarity > 0
    # sizes unknown (the agent asks before the training job knows them): the size filter is left out
    wide = next(e.id for e in store.list("subtask", where={"name": "wide"}))
    assert {h.id for h in store.similar_subtasks("rl", None, None, "grasp a cube", k=5)} == {good, wide}


def test_hashing_retrieval_ranks_a_rewording_first(store: ExperienceStore) -> None:
    ids = [store.add_task(_task(r)) for r in REQUESTS]
    hits = store.search("open the cabinet's top drawer", k=3)
    assert hits[0].id == ids[2] and hits[0].distance <= hits[1].distance


def test_minilm_ranks_a_paraphrase_first(tmp_path: Path) -> None:
    with ExperienceStore.open(tmp_path / "chroma", embedder="minilm") as store:
        ids = [store.add_task(_task(r)) for r in REQUESTS]
        for query, want in [
            ("raise the crimson block from the desk", 0),
            ("drop the tennis ball in the basin", 1),
            ("twirl a pencil with your fingertips", 15),
        ]:
            assert store.search(query, k=1)[0].id == ids[want], query


def test_minilm_files_are_the_upstream_ones(tmp_path: Path) -> None:
    model = MiniLMEmbedder()
    from dexforge.memory.embeddings import minilm_path, verify_minilm

    verify_minilm(minilm_path())  # the installed package ships the upstream weights
    fake = tmp_path / "model"
    shutil.copytree(minilm_path(), fake, ignore=shutil.ignore_patterns("model.safetensors"))
    (fake / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(ModelIntegrityError, match="refusing to load"):
        MiniLMEmbedder(fake).embed(["x"])
    assert (model.name, model.dim) == ("all-MiniLM-L6-v2", 384)


def test_store_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "chroma")
    write = _py(
        """
        import sys
        from dexforge.memory.records import TaskRecord
        from dexforge.memory.store import ExperienceStore
        with ExperienceStore.open(sys.argv[1], embedder="hashing") as s:
            print(s.add_task(TaskRecord(request="lift the red cube", status="succeeded", family="lift")))
        """,
        path,
    )
    out, err = write.communicate(timeout=120)
    assert write.returncode == 0, err
    read = _py(
        """
        import json, sys
        from dexforge.memory.store import ExperienceStore
        with ExperienceStore.open(sys.argv[1], embedder="hashing", writer=False) as s:
            hit = s.search("raise the red cube", k=1)[0]
            print(json.dumps({"id": hit.id, "family": hit.record.family, "counts": s.stats()["counts"]}))
        """,
        path,
    )
    got, err = read.communicate(timeout=120)
    assert read.returncode == 0, err
    assert json.loads(got) == {"id": out.strip(), "family": "lift", "counts": {"task": 1, "subtask": 0, "failure": 0}}


def test_a_second_writer_gets_the_lock_error(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    holder = _py(
        """
        import sys
        from dexforge.memory.store import ExperienceStore
        with ExperienceStore.open(sys.argv[1], embedder="hashing") as s:
            print("ready", flush=True)
            sys.stdin.read()
        """,
        str(path),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(MemoryLockedError, match=rf"{path}.*process {holder.pid}"):
            ExperienceStore.open(path, embedder="hashing")
        with ExperienceStore.open(path, embedder="hashing", writer=False) as reader:  # readers are let in
            assert reader.stats()["counts"]["task"] == 0
            with pytest.raises(Exception, match="read-only"):
                reader.add_task(_task("lift the cube"))
        # a writer that may wait gets the store once the holder finishes (a parallel run archiving)
        threading.Timer(1.0, lambda: holder.stdin.close()).start()  # type: ignore[union-attr]
        with ExperienceStore.open(path, embedder="hashing", wait_s=60) as store:
            assert holder.wait(timeout=60) == 0
            store.add_task(_task("lift the cube"))
    finally:
        if holder.poll() is None:
            holder.communicate("", timeout=60)
    with ExperienceStore.open(path, embedder="hashing") as store:  # released when the writer closed it
        assert store.stats()["counts"]["task"] == 1


def test_another_embedder_is_refused_until_reembedded(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    with ExperienceStore.open(path, embedder=HashingEmbedder(dim=256)) as store:
        rid = store.add_task(_task("lift the red cube"))
    with pytest.raises(EmbedderMismatchError, match="dexforge memory reembed --embedder hashing"):
        ExperienceStore.open(path, embedder="hashing")
    result = CliRunner().invoke(app, ["reembed", "--embedder", "hashing", "--path", str(path)])
    assert result.exit_code == 0, result.output
    with ExperienceStore.open(path, embedder="hashing") as store:
        assert store.search("lift the cube", k=1)[0].id == rid
        assert store.stored_embedder == ("hashing-v1-384", 384)


def test_an_interrupted_reembed_is_recovered(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    with ExperienceStore.open(path, embedder="hashing") as store:
        rid = store.add_task(_task("lift the red cube"))
        store.add_failure(FailureRecord(stage="train", reason="reward is NaN"))
        client = store._client  # play an interrupted reembed: tasks copied and swapped, failures half-copied
        copy = client.create_collection("dexforge_tasks_reembed", metadata={"embedder": "x", "embedder_dim": 4})
        copy.add(
            ids=[rid],
            embeddings=[[1.0, 0, 0, 0]],
            documents=["lift"],
            metadatas=store._collections["task"].get()["metadatas"],
        )
        client.delete_collection("dexforge_tasks")
        client.create_collection("dexforge_failures_reembed", metadata={"embedder": "x", "embedder_dim": 4})
    with pytest.raises(EmbedderMismatchError, match=r"embedded with x \(4-d\), not hashing-v1-384"):
        ExperienceStore.open(path, embedder="hashing")
    with ExperienceStore.open(path, embedder="hashing", check_embedder=False) as store:
        assert store.get(rid).record.request == "lift the red cube"
        assert store.reembed("hashing") == 2 and store.search("lift the cube", k=1)[0].id == rid


def test_export_then_import_reproduces_the_store(store: ExperienceStore, tmp_path: Path) -> None:
    for r in REQUESTS[:5]:
        store.add_task(_task(r, objects=["cube"]))
    store.add_subtask(_subtask(tmp_path, "grasp"))
    store.add_failure(FailureRecord(stage="checks", reason="cube interpenetrates the table"))
    dump = tmp_path / "memory.jsonl"
    assert store.export(dump) == 7
    assert json.loads(dump.read_text().splitlines()[0])["embedder"] == "hashing-v1-384"

    def snapshot(s: ExperienceStore) -> dict[str, object]:
        return {e.id: (e.record, e.document) for kind in ("task", "subtask", "failure") for e in s.list(kind, 100)}

    with ExperienceStore.open(tmp_path / "copy", embedder="hashing") as copy:
        assert copy.import_(dump) == 7
        assert snapshot(copy) == snapshot(store) and copy.stats()["counts"] == store.stats()["counts"]
        query = "lift the red cube"
        assert [h.id for h in copy.search(query)] == [h.id for h in store.search(query)]
    with ExperienceStore.open(tmp_path / "other", embedder=HashingEmbedder(dim=128)) as other:  # re-embeds
        assert other.import_(dump) == 7 and other.search(REQUESTS[3], k=1)[0].document == REQUESTS[3]


def test_forget_removes(store: ExperienceStore) -> None:
    keep, drop = store.add_task(_task("lift the cube")), store.add_task(_task("open the drawer"))
    store.forget(drop)
    with pytest.raises(RecordNotFoundError):
        store.get(drop)
    with pytest.raises(RecordNotFoundError):
        store.forget(drop)
    assert [h.id for h in store.search("open the drawer", k=5)] == [keep]


def test_old_schema_versions_are_readable(store: ExperienceStore, tmp_path: Path) -> None:
    v1 = {  # a line of the plain-file archive (agents/experience.py): schema v1
        "run_id": "r1",
        "request": "lift the red cube",
        "family": "lift",
        "status": "failed",
        "reason": "grasp slipped",
        "task_success_rate": 0.25,
        "spec": "name: lift_cube\n",
        "plan": None,
    }
    dump = tmp_path / "old.jsonl"
    header = {"format": "dexforge-memory", "format_version": 1, "embedder": None, "dim": None}
    dump.write_text(json.dumps(header) + "\n" + json.dumps({"id": "task-old", "kind": "task", "record": v1}) + "\n")
    store.import_(dump)
    record = store.get("task-old").record
    assert isinstance(record, TaskRecord) and record.schema_version == SCHEMA_VERSION
    assert (record.spec_yaml, record.plan_yaml, record.reason) == ("name: lift_cube\n", "", "grasp slipped")
    assert record.metrics.task_success_rate == 0.25 and store.search("raise the cube", k=1)[0].id == "task-old"
    with pytest.raises(RecordError, match="newer"):
        load_record("task", {**v1, "schema_version": SCHEMA_VERSION + 1})


class _Embeddings(BaseHTTPRequestHandler):
    """`POST /v1/embeddings` answered with hashing vectors, as an OpenAI-compatible server would."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        rows = HashingEmbedder(dim=64).embed(texts)
        data = [{"object": "embedding", "index": i, "embedding": row.tolist()} for i, row in enumerate(rows)]
        usage = {"prompt_tokens": 1, "total_tokens": 1}
        payload = json.dumps({"object": "list", "data": data, "model": body["model"], "usage": usage}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_openai_compatible_endpoint(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        settings = MemorySettings.from_env({"DEXFORGE_EMBED_BASE_URL": url, "DEXFORGE_EMBED_MODEL": "tiny"})
        assert settings.embedder == "openai"
        embedder = settings.make_embedder()
        assert isinstance(embedder, OpenAIEmbedder) and (embedder.name, embedder.dim) == ("openai:tiny", 64)
        np.testing.assert_allclose(embedder.embed(["lift it"]), HashingEmbedder(dim=64).embed(["lift it"]), atol=1e-6)
        with ExperienceStore.open(tmp_path / "chroma", embedder=embedder) as store:
            ids = [store.add_task(_task(r)) for r in REQUESTS[:5]]
            assert store.search("lift the red cube", k=1)[0].id == ids[0]
    finally:
        server.shutdown()
        server.server_close()


def test_settings_resolution(tmp_path: Path) -> None:
    env = {"DEXFORGE_CHROMA_URL": "http://127.0.0.1:9", "DEXFORGE_MEMORY_DIR": str(tmp_path), "DEXFORGE_EMBEDDER": ""}
    settings = MemorySettings.from_env(env)
    assert (settings.url, settings.path, settings.embedder) == ("http://127.0.0.1:9", tmp_path, "minilm")
    with ExperienceStore.open(tmp_path / "explicit", embedder="hashing", settings=settings) as store:  # path wins
        assert store.where == str(tmp_path / "explicit")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chroma_server_when_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chroma = Path(sys.executable).parent / "chroma"
    if not chroma.exists():
        pytest.skip("no chroma executable")
    port = _free_port()
    cmd = [str(chroma), "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        monkeypatch.setenv("DEXFORGE_CHROMA_URL", f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        while True:
            try:
                store = ExperienceStore.open(embedder="hashing")
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        with store:
            assert store.where == f"http://127.0.0.1:{port}"
            rid = store.add_task(_task("lift the red cube"))
            assert store.search("raise the red cube", k=1)[0].id == rid
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXFORGE_EMBEDDER", "hashing")
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "chroma"
    with ExperienceStore.open(path) as store:
        ids = [store.add_task(_task(r)) for r in REQUESTS[:3]]
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, [*args, "--path", str(path)])
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.output

    assert all(i in run("list") for i in ids)
    assert json.loads(run("search", "open the top drawer", "--json"))[0]["id"] == ids[2]
    assert json.loads(run("show", ids[1]))["record"]["request"] == REQUESTS[1]
    assert json.loads(run("stats", "--json"))["counts"]["task"] == 3
    run("export", str(tmp_path / "dump.jsonl"))
    run("forget", ids[0], "--yes")
    assert json.loads(run("stats", "--json"))["counts"]["task"] == 2
    assert "imported 3 records" in run("import", str(tmp_path / "dump.jsonl"))
    missing = runner.invoke(app, ["show", "task-nope", "--path", str(path)])
    assert isinstance(missing.exception, RecordNotFoundError)
