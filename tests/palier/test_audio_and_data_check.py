import json

import numpy as np
import pytest
from typer.testing import CliRunner

from audio_files import GOOD, write_audio_zoo
from core.stage.audio import AudioError, load_audio
from palier.cli import app
from core.training_data import check_manifest


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo")
    write_audio_zoo(folder / "audio")
    return folder


@pytest.mark.parametrize("name,rate,channels,fmt,subtype,seconds", GOOD)
def test_every_format_loads_as_16k_mono(zoo, name, rate, channels, fmt, subtype, seconds):
    audio = load_audio(zoo / "audio" / name)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.source_rate == rate and audio.source_channels == channels
    assert audio.duration_s == pytest.approx(seconds, abs=0.08)  # codecs pad a few ms


@pytest.mark.parametrize("name,reason", [
    ("empty.wav", "file is empty"), ("html_error_page.wav", "not a readable audio file"),
    ("truncated.wav", "not a readable audio file"), ("missing.wav", "file not found")])
def test_broken_files_say_why(zoo, name, reason):
    with pytest.raises(AudioError, match=reason):
        load_audio(zoo / "audio" / name)


def _manifest(zoo, rows):
    path = zoo / "manifest.csv"
    path.write_text("audio,sentence\n" + "".join(f"audio/{a},{s}\n" for a, s in rows), encoding="utf-8")
    return path


def test_data_check_reports_each_file(zoo):
    rows = [(g[0], "bonjour") for g in GOOD] + [("empty.wav", "x"), ("html_error_page.wav", "x"),
                                                ("too_long.wav", "x"), ("missing.wav", "x"),
                                                ("pcm16_16k_mono.wav", "")]
    reports = check_manifest(_manifest(zoo, rows), window_s=6)
    ok = {r.audio: r for r in reports if r.ok}
    assert set(ok) == {f"audio/{g[0]}" for g in GOOD}
    assert ok["audio/pcm24_48k_stereo.wav"].sample_rate == 48000 and ok["audio/pcm24_48k_stereo.wav"].channels == 2
    assert ok["audio/pcm24_48k_stereo.wav"].subtype == "PCM_24"
    bad = {(r.line, r.audio): r.problem for r in reports if not r.ok}
    assert "longer than the 6s window" in bad[(len(GOOD) + 4, "audio/too_long.wav")]
    assert "file not found" in bad[(len(GOOD) + 5, "audio/missing.wav")]
    assert "empty transcript" in bad[(len(GOOD) + 6, "audio/pcm16_16k_mono.wav")]


def test_data_check_cli_json_and_exit_code(zoo):
    runner = CliRunner()
    good = _manifest(zoo, [(g[0], "bonjour") for g in GOOD])
    result = runner.invoke(app, ["data", "check", str(good), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] == len(GOOD)
    bad = _manifest(zoo, [("empty.wav", "x")])
    assert runner.invoke(app, ["data", "check", str(bad)]).exit_code == 1
    wrong = zoo / "wrong.csv"
    wrong.write_text("path,text\na.wav,x\n")
    result = runner.invoke(app, ["data", "check", str(wrong)])
    assert result.exit_code == 2 and "audio,sentence" in result.output
