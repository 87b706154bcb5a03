"""In-process CLI helpers shared by the task tests: run a command, check the one-line user-error contract."""

from typer.testing import CliRunner

from songkit.cli import app

runner = CliRunner()


def invoke(*args, **kw):
    """Run ``songkit ARGS`` in-process (arguments may be paths); returns Typer's Result."""
    return runner.invoke(app, [str(a) for a in args], **kw)


def one_line_error(result, *fragments):
    """Assert exit 2 with exactly one ``songkit: error:`` line on stderr holding every fragment."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("songkit: error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
