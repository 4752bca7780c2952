"""Opening the catalog while this process holds it open in the other mode waits, not fails."""

from __future__ import annotations

import threading
import time

from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest
from tests.conftest import SAMPLES


def test_writer_waits_for_a_reader_thread_of_the_same_process(workspace: Workspace) -> None:
    ingest(
        workspace,
        IngestRequest(SAMPLES / "online-retail-2010-12.csv.gz", adapter="online-retail"),
    )
    opened = threading.Event()

    def read() -> None:
        with Warehouse(workspace, read_only=True) as wh:
            opened.set()
            time.sleep(0.5)
            assert wh.latest("events") is not None

    reader = threading.Thread(target=read)
    reader.start()
    opened.wait(10)
    with Warehouse(workspace) as wh:  # read-write while the reader's connection is open
        assert wh.latest("events") is not None  # it waited for the reader, no error
    reader.join()
