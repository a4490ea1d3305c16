"""The command-line checks shared by the commands: --device, counts and output files."""

from __future__ import annotations

import argparse

import pytest
import torch

from vigie.core.options import bounded, output_file, resolve_device
from vigie.core.errors import ConfigError


def _cuda(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_auto_cpu_and_cuda_resolve(monkeypatch) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    _cuda(monkeypatch, 0)
    assert resolve_device("auto") == torch.device("cpu")
    _cuda(monkeypatch, 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(torch.device("cuda", 1)) == torch.device("cuda", 1)


def test_bad_devices_are_one_line_config_errors(monkeypatch) -> None:
    with pytest.raises(ConfigError) as bad:
        resolve_device("banana")
    assert str(bad.value) == "--device banana: not a torch device (cpu, cuda, cuda:N, auto)"
    with pytest.raises(ConfigError, match="not supported"):
        resolve_device("meta")
    _cuda(monkeypatch, 0)
    with pytest.raises(ConfigError) as none:
        resolve_device("cuda")
    assert str(none.value) == "--device cuda: no CUDA device on this machine"
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device(torch.device("cuda", 0))
    _cuda(monkeypatch, 2)
    with pytest.raises(ConfigError) as index:
        resolve_device("cuda:2", option="device")
    assert str(index.value).startswith("device cuda:2: no such CUDA device") and "cuda:1" in str(index.value)


def test_bounded_counts_and_output_files(tmp_path) -> None:
    threads = bounded(int, 1)
    assert threads("3") == 3
    for text, why in (("0", "must be >= 1"), ("-1", "must be >= 1"), ("two", "expected an integer")):
        with pytest.raises(argparse.ArgumentTypeError, match=why):
            threads(text)
    seconds = bounded(float, 0.0, 10.0)
    assert seconds("0") == 0.0 and seconds("2.5") == 2.5
    for text in ("-5", "nan", "11"):
        with pytest.raises(argparse.ArgumentTypeError, match="between 0.0 and 10.0"):
            seconds(text)
    assert output_file(str(tmp_path / "x.png")) == str(tmp_path / "x.png")
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        output_file(str(tmp_path / "missing" / "x.png"))
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder"):
        output_file(str(tmp_path))


def test_an_option_with_a_bad_count_stops_argparse_with_one_line(capsys) -> None:
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--threads", type=bounded(int, 1))
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--threads", "0"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "p: error: argument --threads: must be >= 1, got 0"
