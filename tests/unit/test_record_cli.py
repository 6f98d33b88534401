"""`rdt record` refuses bad input with one line and exit code 2, before touching the graph."""
import pytest

from reverse_digital_twin.cli import main


@pytest.mark.parametrize('args, reason', [
    (['{taken}'], 'exists already; a recording never overwrites'),
    (['{tmp}/new', '--topics', '/a b'], "topic '/a b': topic name must not contain characters"),
    (['{tmp}/new', '--topics', '/ok', '/a//b'], "topic '/a//b'"),
    (['{tmp}/new', '--duration', '-1'], '--duration must be >= 0 s'),
    (['{tmp}/afile/new'], 'afile is not a directory'),
    (['{tmp}/new', '--no-such-option'], 'unrecognized arguments'),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, args, reason):
    (tmp_path / 'taken').mkdir()
    (tmp_path / 'afile').write_text('')
    argv = [a.format(taken=tmp_path / 'taken', tmp=tmp_path) for a in args]
    assert main(['record', *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert reason in err and 'Traceback' not in err, err
    if reason != 'unrecognized arguments':  # argparse prints its usage line too
        assert len(err.splitlines()) == 1, err
    assert not (tmp_path / 'new').exists()


def test_help_lists_the_default_topics(capsys):
    from reverse_digital_twin.stack import TwinNames  # noqa: PLC0415
    assert main(['record', '--help']) == 0
    out = ''.join(capsys.readouterr().out.split())  # argparse wraps, even inside names
    assert all(t in out for t in TwinNames().recorded_topics) and '--per-goal' in out


def test_the_readme_recording_commands_parse():
    """The commands of the README's "Recording" block are valid `rdt record` command lines."""
    import re  # noqa: PLC0415
    import shlex  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from reverse_digital_twin.record_cli import _parser  # noqa: PLC0415
    from reverse_digital_twin.stack import TwinNames  # noqa: PLC0415
    text = (Path(__file__).resolve().parents[2] / 'README.md').read_text()
    section = text.split('\n## Recording\n', 1)[1].split('\n## ', 1)[0]
    block = re.search(r'```bash\n(.*?)```', section, re.S).group(1)
    commands = [shlex.split(line.split('  #', 1)[0])[2:] for line in block.splitlines()
                if line.strip()]
    assert len(commands) == 3
    for args in commands:
        _parser().parse_args(args)
    missing = [t for t in TwinNames().recorded_topics if f'`{t}`' not in section]
    assert not missing, f'the README\'s table lacks {missing}'
