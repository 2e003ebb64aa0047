"""The docs run: every code block and console command of README.md and docs/*.md, page by page.

How a page runs (the conventions a page is written to; docs/layout.md "Docs that run" says the same):

- In a process of its own (pages run several at once), top to bottom, in a fresh temporary directory holding
  a copy of the repository's `examples/` (a page reads as if from a clone).
- ```python blocks run in page order as one program (one namespace; top-level `await` runs on one event loop
  per page), with the variables the page's shell exported in `os.environ`. A block whose first line is
  `# NAME.py` is written to that file instead of run.
- ```console blocks: each `$ ` line (with `\\` continuations, quotes and here-documents spanning lines) runs in one bash
  session per page (so `export` and `cd` carry over), in document order with the python blocks. `tocsin` is
  on PATH and `uv run CMD` runs CMD in this environment. The exit status must be 0; a trailing comment
  starting `# exits N` expects N. One starting `# runs until Ctrl-C` starts a long-running command in the
  background: the next command waits until port 8420 (see below) answers when the page uses it, else 2 s,
  and at the end of the page it gets SIGINT and must exit cleanly. Shown output is checked only for a fence
  tagged `output` (```console output): each shown line, in order, must be a line of the output (a `...`
  line skips any number of lines; a line ending in `...` matches any line it starts).
- ```toml blocks are parsed; one whose first line is `# NAME.toml` is written to that file (replacing it).
- Port 8420 (the API's default) becomes a free port everywhere on the page, so runs do not collide.
- `no-run` on a fence (```python no-run) skips the block; the paragraph above it must say why, with the
  words "not run", and no-run stays rare (`MAX_NO_RUN`).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(path.relative_to(ROOT).as_posix() for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
FILE_LINE = re.compile(r"#\s*([\w./-]+\.(?:toml|py))\s*$")
EXITS = re.compile(r"\s#\s*exits (\d+)\b[^\n]*$")
FOREVER = re.compile(r"\s#\s*runs until Ctrl-C\b[^\n]*$")
COMMENT = re.compile(r"\s+#(?![^'\"]*['\"][^'\"]*$).*$")  # a trailing shell comment (not inside quotes)
HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")
DOC_PORT = "8420"
SHELL_OWN = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
COMMAND_TIMEOUT_S = 90.0
PAGE_TIMEOUT_S = 300.0
MAX_NO_RUN = 12
KNOWN_FAILING: dict[str, str] = {}
"""Pages that do not run yet, each with why: strict xfails, so fixing one fails until it leaves this list."""
UV_SHIM = """#!/bin/sh
# The docs test runs inside the synced workspace: `uv run [OPTIONS] CMD ...` runs CMD here.
if [ "$1" = "run" ]; then
  shift
  while [ "${1#-}" != "$1" ]; do shift; done
  exec "$@"
fi
echo "the docs test offers only 'uv run' (got: uv $*)" >&2
exit 2
"""


@dataclass
class Block:
    """One fenced block: its language, tags, text and the line it starts on."""

    lang: str
    tags: set[str]
    text: str
    line: int
    reason: str = ""


@dataclass
class Command:
    """One `$ ` command of a console block with the output the page shows under it."""

    text: str
    shown: list[str] = field(default_factory=list)
    exits: int = 0
    forever: bool = False


def blocks_of(page: str) -> list[Block]:
    """Every fenced block of a page, with the paragraph above each (where a no-run reason goes)."""
    source = (ROOT / page).read_text()
    found = []
    for match in FENCE.finditer(source):
        before = source[:match.start()].rstrip("\n").split("\n")
        paragraph: list[str] = []
        for text in reversed(before):
            if not text.strip() or text.startswith("```"):
                break
            paragraph.insert(0, text)
        found.append(Block(match.group(1), set(match.group(2).split()), match.group(3),
                           source.count("\n", 0, match.start()) + 1, " ".join(paragraph)))
    return found


def open_quote(command: str) -> bool:
    """Whether a shell command ends inside a quoted string (its next line belongs to it)."""
    quote = ""
    escaped = False
    for i, char in enumerate(command):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or command[i - 1].isspace()):  # a comment runs to the end of its line
            rest = command.find("\n", i)
            return rest != -1 and open_quote(command[rest + 1:])
    return bool(quote)


def commands_of(text: str) -> list[Command]:
    """The `$ ` lines of a console block (with `\\` continuations and quoted strings spanning lines) with the
    lines shown after each."""
    commands: list[Command] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            command = line[2:]
            while (command.endswith("\\") or open_quote(command)) and i + 1 < len(lines):
                i += 1
                command += "\n" + lines[i]
            if heredoc := HEREDOC.search(command):
                while i + 1 < len(lines) and lines[i].strip() != heredoc.group(1):
                    i += 1
                    command += "\n" + lines[i]
            exits, forever = EXITS.search(command), FOREVER.search(command)
            commands.append(Command(COMMENT.sub("", command) if (exits or forever) else command,
                                    exits=int(exits.group(1)) if exits else 0, forever=bool(forever)))
        elif commands:
            commands[-1].shown.append(line)
        i += 1
    return commands


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Shell:
    """One bash session for a page: commands run one at a time, each with its exit status and output."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                        text=True, start_new_session=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.background: list[tuple[int, str, Path]] = []
        self.cwd = cwd
        self.run("set -m")  # job control: each background job gets its own process group

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, command: str, timeout: float = COMMAND_TIMEOUT_S) -> tuple[int, str]:
        """Run one command (stdin from /dev/null); its exit status and combined output."""
        marker = f"__docs_{uuid.uuid4().hex}__"
        assert self.process.stdin is not None
        self.process.stdin.write(f"{{ {command}\n}} < /dev/null\nprintf '\\n{marker} %s\\n' $?\n")
        self.process.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no answer within {timeout:g} s from: {command}\n{''.join(output)[-3000:]}")
            if line is None:
                pytest.fail(f"the shell ended during: {command}\n{''.join(output)[-3000:]}")
            if line.startswith(marker):
                text = "".join(output)
                return int(line.split()[1]), text[:-1] if text.endswith("\n") else text
            output.append(line)

    def start(self, command: str, port: int | None) -> None:
        """Start a long-running command in the background and wait until it is ready."""
        log = self.cwd / f".background-{len(self.background)}.log"
        status, pid = self.run(f"{{ {command}\n}} < /dev/null > {log} 2>&1 &\necho $!")
        assert status == 0, pid
        self.background.append((int(pid.strip().splitlines()[-1]), command, log))
        deadline = time.monotonic() + (30 if port else 2)
        while time.monotonic() < deadline:
            alive, _ = self.run(f"kill -0 {self.background[-1][0]} 2>/dev/null")
            if alive != 0:
                pytest.fail(f"`{command}` ended early:\n{log.read_text()[-3000:]}")
            if port:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        return
            time.sleep(0.1)
        if port:
            pytest.fail(f"`{command}` did not answer on port {port} within 30 s:\n{log.read_text()[-3000:]}")

    def close(self) -> None:
        """Interrupt the background commands (each must exit cleanly) and end the session."""
        problems = []
        for pid, command, log in self.background:
            os.killpg(pid, signal.SIGINT)
            status, _ = self.run(f"wait {pid}", timeout=20)
            if status not in (0, 130):
                problems.append(f"`{command}` exited {status} after Ctrl-C:\n{log.read_text()[-3000:]}")
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        assert not problems, "\n".join(problems)


def check_shown(command: Command, output: str) -> None:
    """Each shown line, in order, is a line of the output; `...` skips lines, a trailing `...` ends a prefix."""
    lines = [line.rstrip() for line in output.splitlines()]
    position = 0
    for shown in command.shown:
        if shown.strip() == "...":
            continue
        want = shown.rstrip()
        found = [i for i in range(position, len(lines))
                 if lines[i] == want or (want.endswith("...") and lines[i].startswith(want[:-3]))]
        if not found:
            pytest.fail(f"`{command.text}` did not print {shown!r}; it printed:\n{output[-3000:]}")
        position = found[0] + 1


class Page:
    """One page being run: its directory, namespace, event loop and shell."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory
        self.port = free_port()
        self.uses_port = DOC_PORT in (ROOT / name).read_text()
        shim = directory / ".bin"
        shim.mkdir()
        (shim / "uv").write_text(UV_SHIM)
        (shim / "uv").chmod(0o755)
        env = {key: value for key, value in os.environ.items() if not key.startswith("TOCSIN_")}
        env.update(PATH=f"{shim}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                   NO_COLOR="1", COLUMNS="120", PYTHONUNBUFFERED="1")
        self.shell: Shell | None = None
        self.env = env
        self.namespace: dict[str, object] = {"__name__": "__main__"}
        self.loop = asyncio.new_event_loop()

    def ported(self, text: str) -> str:
        return text.replace(DOC_PORT, str(self.port))

    def python(self, block: Block) -> None:
        self._take_exports()
        source = self.ported(block.text)
        first = source.split("\n", 1)[0]
        if (named := FILE_LINE.fullmatch(first.strip())) and named.group(1).endswith(".py"):
            (self.directory / named.group(1)).write_text(source)
            return
        code = compile(source, f"{self.name}:{block.line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        if code.co_flags & inspect.CO_COROUTINE:
            self.loop.run_until_complete(eval(code, self.namespace))
        else:
            exec(code, self.namespace)

    def _take_exports(self) -> None:
        """Variables the page's shell exported are in the environment of its python blocks too."""
        if self.shell is None:
            return
        status, output = self.shell.run("python3 -c 'import json, os; print(json.dumps(dict(os.environ)))'")
        assert status == 0, output
        for key, value in json.loads(output.splitlines()[-1]).items():
            if key not in SHELL_OWN and self.env.get(key) != value:
                os.environ[key] = value

    def toml(self, block: Block) -> None:
        source = self.ported(block.text)
        try:
            tomllib.loads(source)
        except tomllib.TOMLDecodeError as error:
            pytest.fail(f"{self.name}:{block.line}: the toml block does not parse: {error}")
        first = source.split("\n", 1)[0]
        if (named := FILE_LINE.fullmatch(first.strip())) and named.group(1).endswith(".toml"):
            (self.directory / named.group(1)).write_text(source)

    def console(self, block: Block) -> None:
        if self.shell is None:
            self.shell = Shell(self.directory, self.env)
        for command in commands_of(block.text):
            text = self.ported(command.text)
            if command.forever:
                self.shell.start(text, self.port if self.uses_port else None)
                continue
            status, output = self.shell.run(text)
            if status != command.exits:
                pytest.fail(f"{self.name}:{block.line}: `{command.text}` exited {status}, the page shows "
                            f"{command.exits}:\n{output[-3000:]}")
            if "output" in block.tags:
                check_shown(command, output)

    def close(self) -> None:
        try:
            for value in list(self.namespace.values()):  # monitors a page left running
                if type(value).__name__ != "Monitor" or getattr(value, "closed", True):
                    continue
                if getattr(value, "_thread", None) is None and getattr(value, "started", False):
                    self.loop.run_until_complete(value.aclose())  # started with `await monitor.astart()`
                else:
                    value.close()
        finally:
            self.loop.close()
            if self.shell is not None:
                self.shell.close()


def run_page(name: str, directory: Path) -> None:
    """Run one page in `directory` (this process is the page's: it changes directory and environment)."""
    shutil.copytree(ROOT / "examples", directory / "examples")
    os.chdir(directory)
    sys.argv = [name]
    for key in [key for key in os.environ if key.startswith("TOCSIN_")]:
        del os.environ[key]
    page = Page(name, directory)
    try:
        for block in blocks_of(name):
            runner = {"python": page.python, "console": page.console, "toml": page.toml}.get(block.lang)
            if "no-run" in block.tags or runner is None:
                continue
            try:
                runner(block)
            except (Exception, SystemExit) as error:
                if isinstance(error, pytest.fail.Exception):
                    raise
                pytest.fail(f"{name}:{block.line}: the {block.lang} block failed: {type(error).__name__}: "
                            f"{error}\n{textwrap.indent(block.text, '    ')}")
    finally:
        page.close()


@pytest.fixture(scope="module")
def page_runs(request, tmp_path_factory) -> dict[str, Future[subprocess.CompletedProcess[str]]]:
    """Each selected page run in its own process, several at once (pages are independent), started on first
    use."""
    def run(name: str) -> subprocess.CompletedProcess[str]:
        directory = tmp_path_factory.mktemp("page") / "page"
        return subprocess.run([sys.executable, __file__, name, str(directory)], capture_output=True, text=True,
                              timeout=PAGE_TIMEOUT_S, cwd=ROOT)

    pool = ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 1))
    selected = {item.callspec.params["name"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_page_runs"}
    runs = {name: pool.submit(run, name) for name in PAGES if name in selected}
    yield runs
    pool.shutdown(wait=True)


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.xfail(reason=KNOWN_FAILING[name],
                                                                            strict=True))
                                  if name in KNOWN_FAILING else name for name in PAGES])
def test_page_runs(name, page_runs):
    result = page_runs[name].result()
    if result.returncode != 0:
        pytest.fail(f"{name} does not run as written:\n{result.stderr[-6000:]}\n{result.stdout[-2000:]}",
                    pytrace=False)


def test_no_run_blocks_say_why_and_stay_rare():
    skipped = [(name, block) for name in PAGES for block in blocks_of(name) if "no-run" in block.tags]
    unexplained = [f"{name}:{block.line}" for name, block in skipped if "not run" not in block.reason.lower()]
    assert not unexplained, f"no-run blocks without a reason ('not run ...') in the paragraph above: {unexplained}"
    assert len(skipped) <= MAX_NO_RUN, [f"{name}:{block.line}" for name, block in skipped]


def test_the_harness_reads_console_blocks_as_documented():
    commands = commands_of("$ tocsin a \\\n  --b 1   # exits 2\nshown\n...\n$ tocsin serve   # runs until Ctrl-C\n")
    assert [(c.text, c.exits, c.forever, c.shown) for c in commands] == [
        ("tocsin a \\\n  --b 1", 2, False, ["shown", "..."]), ("tocsin serve", 0, True, [])]
    assert commands_of("$ echo '# not a comment'   # exits 0")[0].text == "echo '# not a comment'"
    assert commands_of("$ curl -d '[\n  1\n]'\n{}")[0].text == "curl -d '[\n  1\n]'"
    assert [c.text for c in commands_of("$ a   # tocsin's\n$ b")] == ["a   # tocsin's", "b"]
    assert commands_of("$ cat <<'EOF'\n$ x\nEOF\nshown")[0].text == "cat <<'EOF'\n$ x\nEOF"


def _too_long(signum: int, frame: object) -> None:
    pytest.fail(f"the page ran longer than {PAGE_TIMEOUT_S - 30:g} s")


if __name__ == "__main__":  # one page, as `page_runs` starts it: python tests/test_docs.py PAGE DIRECTORY
    signal.signal(signal.SIGALRM, _too_long)  # fail (and clean up the shell and servers) before being killed
    signal.alarm(int(PAGE_TIMEOUT_S - 30))
    try:
        run_page(sys.argv[1], Path(sys.argv[2]))
    except pytest.fail.Exception as failure:
        print(failure.msg, file=sys.stderr)
        sys.exit(1)
