"""Task packages: one per task, the same name in every layer.

`songkit TASK`, `songkit train TASK` and `songkit eval TASK` come from the
thin Typer module `songkit.cli.<TASK>`; the library code lives in
`songkit.tasks.<TASK>`. A task is listed here only once it is built (no stubs).
"""

TASKS: list[str] = [
    "instrument",
    "generate",
    "chords",
    "tokenize",
    "segment",
]
