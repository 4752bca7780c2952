"""A workspace's first keys are created once, even when many threads or processes race.

DuckDB runs the sealing UDF on several threads at once; before the ring was created under
a lock with an exclusive link, two of them could write the same temporary file (one
failed) or two different first keys (tokens sealed under the loser never opened again).
"""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from shopkeeper.clean._crypto import FieldCipher
from shopkeeper.clean._pii import KeyStore

RACERS = 12


def _race(worker: object, n: int = RACERS) -> list[object]:
    barrier = threading.Barrier(n)
    out: list[object] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = worker()  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - the test reports every failure
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return out


def test_one_cipher_sealing_on_many_threads_creates_one_ring(tmp_path: Path) -> None:
    cipher = FieldCipher(tmp_path / "keys" / "field.key")
    tokens = _race(lambda: cipher.encrypt("secret zip 90210"))
    reopened = FieldCipher(tmp_path / "keys" / "field.key").load(create=False)
    assert {reopened.decrypt(str(t)) for t in tokens} == {"secret zip 90210"}
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["field.key"]


def test_separate_ciphers_racing_agree_on_the_first_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "field.key"
    tokens = _race(lambda: FieldCipher(path).encrypt("x"))
    reopened = FieldCipher(path).load(create=False)
    assert reopened.key_id == "k1"
    assert [reopened.decrypt(str(t)) for t in tokens] == ["x"] * RACERS


def _pseudonym(path: str, queue: multiprocessing.Queue[str]) -> None:
    queue.put(KeyStore(Path(path)).load().pseudonymize("17850"))


def test_processes_racing_on_a_fresh_keystore_agree_on_one_pseudonym(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "pseudonym.key"
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_pseudonym, args=(str(path), queue)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * 6
    pseudonyms = {queue.get(timeout=10) for _ in procs}
    assert pseudonyms == {KeyStore(path).load(create=False).pseudonymize("17850")}
    assert sorted(p.name for p in path.parent.iterdir()) == ["pseudonym.key"]
