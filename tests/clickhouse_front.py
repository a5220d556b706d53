"""A test-only ClickHouse HTTP interface in front of chDB, so that several processes (gunicorn's workers, a Celery
worker) share one ClickHouse engine as they would share a server:

    .venv/bin/python tests/clickhouse_front.py PORT DATA_DIR

Just enough of ClickHouse's HTTP protocol for clickhouse-connect (with `compress=False`): the query in the body or
in the `query` parameter, the answer in the format the query names (else TabSeparated), an insert's rows in the
body in the format it names (written to a file and read with `FROM INFILE`), the de-duplication settings of an
insert applied (`insert_deduplication_token`, `insert_deduplicate`), errors as a 500 with ClickHouse's message
and code. One engine, one query at a time.
"""

import re
import sys
import tempfile
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import chdb

FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
APPLIED_SETTINGS = ("insert_deduplication_token", "insert_deduplicate")


class Front(BaseHTTPRequestHandler):
    engine = None
    lock = threading.Lock()
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # inserts stream their blocks
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return self._handle(b"".join(chunks))
        return self._handle(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _handle(self, body: bytes) -> None:
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        query = params.pop("query", None)
        data = body if query is not None else None
        if query is None:  # an insert sends its rows after the query's first line
            head, _, rest = body.partition(b"\n")
            if head.lstrip()[:6].upper() == b"INSERT" and FORMAT.search(head.decode()):
                query, data = head.decode(), rest
            else:
                query = body.decode()
        if not query.strip():  # the ping
            return self._answer(200, b"Ok.\n", "TabSeparated")
        match = FORMAT.search(query)
        fmt = match.group(1) if match else params.get("default_format", "TabSeparated")
        try:
            with self.lock:
                result = self._run(query, data, fmt, params)
        except Exception as exc:  # every engine error goes back to the client as ClickHouse sends it
            message = str(exc)
            code = re.match(r"Code: (\d+)", message)
            return self._answer(500, message.encode(), "TabSeparated", code.group(1) if code else "1")
        return self._answer(200, result, fmt)

    def _run(self, query: str, data: bytes | None, fmt: str, params: dict[str, str]) -> bytes:
        settings = {name: params[name] for name in APPLIED_SETTINGS if name in params}
        for name, value in settings.items():
            self.engine.query(f"SET {name} = '{value}'", "TabSeparated")
        try:
            if data is None:
                values = {k.removeprefix("param_"): v for k, v in params.items() if k.startswith("param_")}
                return self.engine.query(query, fmt, params=values).bytes()
            with tempfile.NamedTemporaryFile(suffix=".bin") as file:
                file.write(data)
                file.flush()
                insert = FORMAT.sub(lambda m: f"FROM INFILE '{file.name}' FORMAT {m.group(1)}", query)
                self.engine.query(insert, fmt)
            return b""
        finally:
            for name in settings:
                self.engine.query(f"SET {name} = DEFAULT", "TabSeparated")

    def _answer(self, status: int, payload: bytes, fmt: str, code: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-ClickHouse-Format", fmt)
        self.send_header("X-ClickHouse-Timezone", "UTC")
        self.send_header("X-ClickHouse-Server-Display-Name", "chdb-front")
        self.send_header("X-ClickHouse-Query-Id", str(uuid.uuid4()))
        self.send_header("X-ClickHouse-Summary", '{"read_rows":"0","written_rows":"0"}')
        if code is not None:
            self.send_header("X-ClickHouse-Exception-Code", code)
        self.end_headers()
        self.wfile.write(payload)


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    Front.engine = chdb.connect(path)
    server = ThreadingHTTPServer(("127.0.0.1", port), Front)
    server.serve_forever()


if __name__ == "__main__":
    main()
