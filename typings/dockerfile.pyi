# Types for the `dockerfile` package: a compiled extension wrapping BuildKit's Go parser, with no
# stubs or py.typed. Only what buildcage uses; see ARCHITECTURE.md "Containerfile parsing".
from typing import NamedTuple

class GoIOError(OSError): ...
class GoParseError(ValueError): ...

class Heredoc(NamedTuple):
    name: str
    file_descriptor: int
    content: str

class Command(NamedTuple):
    cmd: str
    sub_cmd: str | None
    json: bool
    original: str
    start_line: int
    end_line: int
    flags: tuple[str, ...]
    value: tuple[str, ...]
    heredocs: tuple[Heredoc, ...]

def all_cmds() -> tuple[str, ...]: ...

def parse_string(s: str) -> tuple[Command, ...]: ...
def parse_file(filename: str) -> tuple[Command, ...]: ...
