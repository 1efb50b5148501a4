"""`nnspec lsp` driven as an editor drives it: JSON-RPC over the server's stdin and stdout,
framed with Content-Length headers, in a subprocess; plus the position arithmetic."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="`nnspec lsp` needs pygls, the optional `lsp` extra")

from lsprotocol import types as lsp  # noqa: E402  (comes with pygls)

from nnspec import lsp as server  # noqa: E402
from nnspec.check import check_source  # noqa: E402
from nnspec.codes import explain  # noqa: E402
from nnspec.format import format_source  # noqa: E402
from nnspec.layers import LAYERS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 20.0  # seconds for any one answer; the server answers in milliseconds

BROKEN = """\
let width = 8

model m {
    input x[2]
    h1: dense width rleu
    h2: dense 8 relu from h1
    skip: add h1 h2
    out: dense 1 sigmoid
}

loss binary_crossentropy
optimizer sgd lr=0.1
"""


class Client:
    """A minimal LSP client: a reader thread turns the server's frames into a queue, and
    every wait has a deadline, so a server that goes quiet fails the test instead of hanging it."""

    def __init__(self, args: list[str]) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen([sys.executable, "-m", "nnspec.cli", *args], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.messages: queue.Queue = queue.Queue()
        self.notifications: list[dict] = []
        self.next_id = 0
        self.encoding = "utf-16"  # what the server chose in `initialize`
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        try:
            while True:
                headers = {}
                while True:
                    line = out.readline()
                    if not line:
                        return
                    if line in (b"\r\n", b"\n"):
                        break
                    key, _, value = line.decode("ascii").partition(":")
                    headers[key.strip().lower()] = value.strip()
                body = out.read(int(headers["content-length"]))
                self.messages.put(json.loads(body))
        finally:
            self.messages.put(None)  # the server closed its stdout

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: dict | None = None) -> None:
        self.send({"method": method, **({"params": params} if params is not None else {})})

    def request(self, method: str, params: dict | None = None) -> object:
        self.next_id += 1
        ident = self.next_id
        self.send({"id": ident, "method": method, **({"params": params} if params is not None else {})})
        reply = self.wait(lambda m: m.get("id") == ident and "method" not in m)
        assert "error" not in reply, reply
        return reply.get("result")

    def wait(self, match) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no answer from the server within {TIMEOUT} s")
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if message is None:
                raise AssertionError(f"the server exited: {self._stderr()}")
            if match(message):
                return message
            if "method" in message and "id" not in message:
                self.notifications.append(message)
            elif "method" in message:  # a request from the server (configuration, ...): refuse it
                self.send({"id": message["id"], "error": {"code": -32601, "message": "not supported"}})

    def diagnostics(self, uri: str, version: int | None = None) -> list[dict]:
        """The next `publishDiagnostics` for `uri` (of `version`, where given)."""
        for i, m in enumerate(self.notifications):  # one that came while waiting for another answer
            if _published(m, uri, version):
                return self.notifications.pop(i)["params"]["diagnostics"]
        return self.wait(lambda m: _published(m, uri, version))["params"]["diagnostics"]

    def _stderr(self) -> str:
        try:
            self.proc.kill()
            return self.proc.communicate(timeout=5)[1].decode(errors="replace")
        except Exception as exc:  # pragma: no cover - only for the failure message
            return repr(exc)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _published(m: dict, uri: str, version: int | None) -> bool:
    return (m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri
            and (version is None or m["params"].get("version") == version))


def _pos(text: str, marker: str, after: int | None = None) -> dict:
    """The LSP position just after the first `marker` (or `after` characters into it)."""
    offset = text.index(marker) + (len(marker) if after is None else after)
    line = text.count("\n", 0, offset)
    return {"line": line, "character": offset - (text.rfind("\n", 0, offset) + 1)}


@pytest.fixture
def client(request):
    """A started and initialized server; `request.param` may give the command line's
    arguments (`args`) and the client's capabilities (`capabilities`)."""
    param = getattr(request, "param", {})
    c = Client(param.get("args", ["lsp"]))
    try:
        reply = c.request("initialize", {"processId": os.getpid(), "rootUri": None,
                                         "capabilities": param.get("capabilities", {})})
        caps = reply["capabilities"]  # type: ignore[index]
        c.encoding = caps.get("positionEncoding", "utf-16")
        assert caps["hoverProvider"] and caps["definitionProvider"] and caps["documentFormattingProvider"]
        assert "completionProvider" in caps
        c.notify("initialized", {})
        yield c
        assert c.request("shutdown") is None
        c.notify("exit")
        assert c.proc.wait(timeout=TIMEOUT) == 0
    finally:
        c.close()


def test_a_session(client: Client) -> None:
    """initialize, didOpen with a broken spec, diagnostics at the right range, completion,
    hover, formatting, definition, a change that fixes the spec, shutdown and exit."""
    uri = "file:///tmp/broken.nn"
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "nnspec", "version": 1,
                                                            "text": BROKEN}})
    diags = client.diagnostics(uri, 1)
    # the same diagnostics `nnspec check` gives, in the same order
    _, want, _ = check_source(BROKEN, "/tmp/broken.nn")
    assert [d["code"] for d in diags] == [d.code for d in want] == ["E101"]
    d = diags[0]
    start = _pos(BROKEN, "h1: dense width ", )
    assert d["range"] == {"start": start, "end": {"line": start["line"], "character": start["character"] + 4}}
    assert d["severity"] == 1 and d["source"] == "nnspec"
    assert d["message"].splitlines()[0] == "unknown activation `rleu`"
    assert "help: did you mean `relu`?" in d["message"]

    # completion: the activations after a layer's units, and `key=` arguments
    items = client.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                       "position": _pos(BROKEN, "h2: dense 8 ")})
    labels = {i["label"] for i in items["items"]}  # type: ignore[index]
    assert {"relu", "sigmoid", "softmax", "init=", "bias=", "from", "width"} <= labels
    assert "dense" not in labels and "adam" not in labels
    items = client.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                       "position": _pos(BROKEN, "optimizer ")})
    assert {i["label"] for i in items["items"]} >= {"sgd", "adam", "adamw", "rmsprop"}  # type: ignore[index]

    # hover: the registry's row for `dense`; under the diagnostic, `nnspec explain E101`
    reply = client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                  "position": _pos(BROKEN, "h2: dense", after=6)})
    md = reply["contents"]["value"]  # type: ignore[index]
    assert LAYERS.get("dense").doc in md and "`units`" in md  # type: ignore[union-attr]
    reply = client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                  "position": _pos(BROKEN, "width rl")})
    assert explain("E101").splitlines()[0] in reply["contents"]["value"]  # type: ignore[index,union-attr]

    # definition: `from h1` jumps to the label `h1`, `width` to its `let`
    loc = client.request("textDocument/definition", {"textDocument": {"uri": uri},
                                                     "position": _pos(BROKEN, "from h", after=6)})
    assert loc["uri"] == uri and loc["range"]["start"] == _pos(BROKEN, "    h1:", after=4)  # type: ignore[index]
    loc = client.request("textDocument/definition", {"textDocument": {"uri": uri},
                                                     "position": _pos(BROKEN, "dense wid")})
    assert loc["range"]["start"] == _pos(BROKEN, "let ")  # type: ignore[index]

    # a change: the fixed spec, badly laid out; the diagnostics clear, then formatting
    fixed = BROKEN.replace("rleu", "relu").replace("loss binary_crossentropy", "loss   binary_crossentropy")
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                             "contentChanges": [{"text": fixed}]})
    assert client.diagnostics(uri, 2) == []
    edits = client.request("textDocument/formatting", {"textDocument": {"uri": uri},
                                                       "options": {"tabSize": 4, "insertSpaces": True}})
    assert len(edits) == 1  # type: ignore[arg-type]
    assert edits[0]["newText"] == format_source(fixed)  # type: ignore[index]
    assert edits[0]["range"]["start"] == {"line": 0, "character": 0}  # type: ignore[index]
    assert edits[0]["range"]["end"] == {"line": fixed.count("\n"), "character": 0}  # type: ignore[index]

    # a spec that does not parse is not formatted
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 3},
                                             "contentChanges": [{"text": "model m {\n    input x[2\n"}]})
    assert client.diagnostics(uri, 3)
    assert client.request("textDocument/formatting", {"textDocument": {"uri": uri},
                                                      "options": {"tabSize": 4, "insertSpaces": True}}) in (None, [])

    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert client.diagnostics(uri) == []


@pytest.mark.parametrize("client", [{}, {"capabilities": {"general": {"positionEncodings": ["utf-8"]}}}],
                         indirect=True, ids=["utf-16", "utf-8"])
def test_incremental_change_and_encodings(client: Client) -> None:
    """An edit of a range, and a line with a character outside the BMP before the error:
    LSP counts it as 2 UTF-16 code units (4 UTF-8 ones where the client asks for UTF-8),
    nnspec's spans as 1 character."""
    uri = "file:///tmp/emoji.nn"
    text = 'model m {\n    input x[2]\n    h1: dense 4 relu  # ok\n}\n'
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "nnspec", "version": 1,
                                                            "text": text}})
    assert client.diagnostics(uri, 1) == []
    # names are ASCII, so the emoji goes in a string argument before the bad word
    line = '    h1: dense 4 bias="😀" rleu\n'
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
        {"range": {"start": {"line": 2, "character": 0}, "end": {"line": 3, "character": 0}}, "text": line}]})
    diags = client.diagnostics(uri, 2)
    bad = [d for d in diags if "rleu" in d["message"]]
    assert bad, diags
    units = {"utf-16": 2, "utf-8": 4}[client.encoding]
    col = line.index("rleu") - 1 + units  # the emoji is one Python character
    assert bad[0]["range"]["start"] == {"line": 2, "character": col}
    assert bad[0]["range"]["end"] == {"line": 2, "character": col + 4}


@pytest.mark.parametrize("client", [{"args": ["lsp", "--stdio"]}], indirect=True)  # as VS Code's client starts it
def test_related_information(client: Client) -> None:
    """A diagnostic with a secondary label carries it as related information."""
    uri = "file:///tmp/dup.nn"
    text = "model m {\n    input x[2]\n    h: dense 2\n    h: dense 1\n}\n"
    _, want, _ = check_source(text)
    assert any(len(d.labels) > 1 for d in want)
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "nnspec", "version": 1,
                                                            "text": text}})
    diags = client.diagnostics(uri, 1)
    related = [r for d in diags for r in d.get("relatedInformation") or []]
    assert related and related[0]["location"]["uri"] == uri
    first = want[[len(d.labels) > 1 for d in want].index(True)]
    secondary = next(lab for lab in first.labels if not lab.primary)
    assert related[0]["location"]["range"]["start"] == {"line": text.count("\n", 0, secondary.span.start),
                                                        "character": secondary.span.start
                                                        - (text.rfind("\n", 0, secondary.span.start) + 1)}


# ------------------------------------------------------------------ in-process pieces

def test_warnings_and_unused_nodes() -> None:
    text = "model m {\n    input x[2]\n    a: dense 2\n    b: dense 1 from x\n}\n"
    (d,) = server.diagnostics(text, "untitled:1")
    assert d.code == "W007" and d.severity == lsp.DiagnosticSeverity.Warning
    assert d.tags == [lsp.DiagnosticTag.Unnecessary]
    assert server.Lines(text).offset(d.range.start) == text.index("a: dense")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8", "utf-32"])
def test_positions_round_trip(encoding: str) -> None:
    text = 'a😀b\r\nμx\rz\n"é😀"\n'
    lines = server.Lines(text, encoding)
    for offset in range(len(text) + 1):
        if text[offset - 1:offset + 1] == "\r\n":
            continue  # between `\r` and `\n`: no LSP position of its own
        assert lines.offset(lines.position(offset)) == offset, offset
    units = {"utf-16": 2, "utf-8": 4, "utf-32": 1}[encoding]
    assert lines.position(text.index("b")) == lsp.Position(0, 1 + units)
    assert lines.position(text.index("x")) == lsp.Position(1, 2 if encoding == "utf-8" else 1)
    assert lines.position(text.index("z")) == lsp.Position(2, 0)  # a lone `\r` ends a line too
    assert lines.position(len(text)) == lsp.Position(4, 0)
    # past the end of a line: its end; past the last line: the end of the text
    assert lines.offset(lsp.Position(0, 99)) == text.index("\r")
    assert lines.offset(lsp.Position(99, 0)) == len(text)


def _at(text: str, marker: str) -> int:
    return text.index(marker) + len(marker)


SPEC = (ROOT / "specs" / "resnet_digits.nn").read_text()


@pytest.mark.parametrize("marker, present, absent", [
    ("\nloss ", {"categorical_crossentropy", "mse", "huber"}, {"adam", "dense"}),
    ("\noptimizer adam ", {"lr=", "beta1=", "eps=", "warmup="}, {"momentum=", "adam"}),
    ("    batch 64\n    ", {"data", "split", "epochs", "early_stop", "metrics"}, {"dense", "adam"}),
    ("    conv2d 8 3 relu padding=", {"same", "valid"}, {"relu"}),
    ("    conv2d 8 3 relu padding=same\n    ", {"dense", "conv2d", "max_pool2d", "res_unit", "input"}, {"adam"}),
    ("    metrics ", {"accuracy", "mse"}, {"adam"}),
    ("\noptimizer adam lr=", {"cosine_decay", "step_decay"}, {"relu"}),
    ("    add input ", {"bn"}, set()),
    ("    res: res_unit 8 ", {"repeat=", "from", "filters=", "kernel="}, {"units="}),
])
def test_completion_contexts(marker: str, present: set[str], absent: set[str]) -> None:
    text = SPEC if marker in SPEC else SPEC.replace("optimizer adam lr=0.01", marker.strip("\n") + " ")
    labels = {i.label for i in server.completions(text, _at(text, marker))}
    assert present <= labels, present - labels
    assert not (absent & labels), absent & labels


def test_completion_in_calls_and_top_level() -> None:
    text = "optimizer sgd lr=cosine_decay(initial=0.1, \n"
    labels = {i.label for i in server.completions(text, len(text) - 1)}
    assert {"steps=", "final="} <= labels and "initial=" not in labels
    text = 'train {\n    data builtin("spirals", \n}\n'
    labels = {i.label for i in server.completions(text, text.index(", ") + 2)}
    assert {"n=", "noise=", "turns="} <= labels and "factor=" not in labels  # `circles` has a factor
    text = 'train {\n    data builtin("circles", n=100, \n}\n'
    labels = {i.label for i in server.completions(text, text.index("100, ") + 5)}
    assert {"noise=", "factor="} <= labels and not {"n=", "turns="} & labels
    labels = {i.label for i in server.completions("", 0)}
    assert labels == {"let", "block", "model", "loss", "optimizer", "regularize", "train"}
    assert server.completions("# dense ", 8) == []  # in a comment
    assert server.completions('let s = "de', 11) == []  # in a string


def test_hover_names_and_codes() -> None:
    md = server.hover(SPEC, _at(SPEC, "    global_avg"))
    assert md and "**global_avg_pool** (layer)" in md
    md = server.hover(SPEC, _at(SPEC, "    batch_norm momen"))
    assert md and "argument of `batch_norm`" in md
    md = server.hover(SPEC, _at(SPEC, "    metrics accur"))
    assert md and "**accuracy** (metric)" in md
    md = server.hover(SPEC, _at(SPEC, 'builtin("dig'))
    assert md and "**digits** (dataset)" in md
    md = server.hover("# see E101\n", 7)
    assert md and explain("E101").splitlines()[0] in md
    assert server.hover("model m {\n}\n", 11) is None
    md = server.hover(SPEC, _at(SPEC, "res: res_"))
    assert md and "block res_unit(filters, kernel=3) {" in md


def test_definition_in_blocks() -> None:
    # inside a block: `input` is not defined by a line; `filters` is the block's parameter
    span = server.definition(SPEC, _at(SPEC, "    conv2d fil"))
    assert span is not None and SPEC[span[0]:span[1]] == "filters" and span[0] < SPEC.index("{")
    span = server.definition(SPEC, _at(SPEC, "add input b"))
    assert span is not None and SPEC[span[0]:span[1]] == "bn"
    span = server.definition(SPEC, _at(SPEC, "res: res_"))
    assert span is not None and SPEC[span[0] - 6:span[1]] == "block res_unit"
    assert server.definition("model m {\n    input x[2\n", 3) is None  # does not parse


def test_formatting_never_garbles() -> None:
    for path in sorted((ROOT / "specs").glob("*.nn")):
        text = path.read_text()
        edits = server.formatting(text)
        assert edits == [] or edits[0].new_text == format_source(text)
    assert server.formatting("model {{{\n") == []


def test_never_raises_while_typing() -> None:
    """Completion, hover, definition and formatting on every prefix of a spec being typed,
    at each position of its last line, and on the whole file at many positions."""
    import random
    rng = random.Random(0)
    texts = [p.read_text() for p in sorted((ROOT / "specs").glob("*.nn"))]
    cases = []
    for text in rng.sample(texts, 6):
        cut = [i for i, ch in enumerate(text) if ch in " \n=([,\"{}"]
        for end in rng.sample(cut, min(40, len(cut))):
            cases.append((text[:end], end))
        cases += [(text, rng.randrange(len(text) + 1)) for _ in range(40)]
    cases += [("", 0), ("\n\n", 1), ('"', 1), ("(((", 3), ("}}}", 3), ("model {", 7), ("x=", 2),
              ("loss (", 6), ("let = ", 6), ("h: : :", 3), ("#", 1), ("\r\r\n", 2)]
    for text, offset in cases:
        server.completions(text, offset)
        server.hover(text, offset)
        server.definition(text, offset)
    for text in texts[:5]:
        server.formatting(text[: len(text) // 2])


def test_the_server_imports_no_jax() -> None:
    """The server is front end: checking as you type must not wait for JAX to load."""
    code = "import sys, nnspec.lsp; nnspec.lsp.server(); assert 'jax' not in sys.modules, 'jax imported'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr


def test_without_pygls_the_command_says_so(tmp_path: Path) -> None:
    """A Python where `pygls` cannot be imported: a usage error naming the extra, no traceback."""
    (tmp_path / "pygls").mkdir()
    (tmp_path / "pygls" / "__init__.py").write_text("raise ImportError('pygls is hidden by this test')\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    out = subprocess.run([sys.executable, "-m", "nnspec.cli", "lsp"], env=env, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60)
    assert out.returncode == 2
    assert "pip install 'nnspec[lsp]'" in out.stderr and "Traceback" not in out.stderr
