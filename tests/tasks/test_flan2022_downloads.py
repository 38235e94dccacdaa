"""`flan-jax data prepare` for the Flan 2022 file sources: resumable downloads, fallbacks, a
source that cannot be fetched named with what to do while the others go on (no network: a fake
opener serves bytes)."""

import io
import os
import tarfile
import urllib.error

import pytest

from flan_jax.data import cli as data_cli
from tasks.flan2022 import downloads


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes, status: int):
        super().__init__(data)
        self.status = status


class FakeServer:
    """Serves `files` (URL -> bytes), honouring Range; URLs in `broken` fail; `cut` URLs break
    off after that many bytes the first time."""

    def __init__(self, files, broken=(), cut=None):
        self.files, self.broken, self.cut = dict(files), set(broken), dict(cut or {})
        self.requests = []

    def __call__(self, url, start):
        self.requests.append((url, start))
        if url in self.broken or url not in self.files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        data = self.files[url]
        if url in self.cut:
            n = self.cut.pop(url)

            class Broken(FakeResponse):
                def read(self, size=-1):
                    out = super().read(size)
                    if self.tell() >= n:
                        raise ConnectionResetError("connection reset")
                    return out

            return Broken(data[start:n + 1], 206 if start else 200)
        return FakeResponse(data[start:], 206 if start else 200)


def test_interrupted_download_resumes_with_a_range_request(tmp_path, monkeypatch):
    monkeypatch.setattr(downloads, "CHUNK", 4)
    url, data = "https://x/file.json", b"0123456789abcdefghij"
    server = FakeServer({url: data}, cut={url: 9})
    dest = str(tmp_path / "a" / "file.json")
    with pytest.raises(ConnectionResetError):
        downloads.fetch_file(url, dest, server)
    assert not os.path.exists(dest) and os.path.getsize(dest + ".part") == 8
    downloads.fetch_file(url, dest, server)
    assert open(dest, "rb").read() == data and not os.path.exists(dest + ".part")
    assert server.requests == [(url, 0), (url, 8)]


def test_server_ignoring_range_restarts_the_file(tmp_path):
    url, data = "https://x/f", b"abcdef"
    dest = str(tmp_path / "f")
    with open(dest + ".part", "wb") as f:
        f.write(b"abc")

    def opener(u, start):  # answers 200 with the whole file whatever the Range
        return FakeResponse(data, 200)

    downloads.fetch_file(url, dest, opener)
    assert open(dest, "rb").read() == data


def test_p3_falls_back_to_the_tfrecord(tmp_path):
    d = downloads.Download((("p3/x/train.parquet", "https://hf/parquet"),
                            ("p3/x/train.tfrecord-00000-of-00001", "https://hf/tfrecord")))
    server = FakeServer({"https://hf/tfrecord": b"records"})
    downloads.fetch(d, str(tmp_path), server)
    assert (tmp_path / "p3/x/train.tfrecord-00000-of-00001").read_bytes() == b"records"
    downloads.fetch(d, str(tmp_path), server)  # complete: nothing fetched again
    assert len(server.requests) == 2


def test_prepare_reports_missing_files_with_what_to_do(tmp_path):
    source = downloads.FileSource("demo", lambda: [
        downloads.Download(((f"demo/{i}.json", f"https://x/{i}"),)) for i in range(3)],
        "put the files into DATA/demo/")
    server = FakeServer({f"https://x/{i}": b"{}" for i in range(3)}, broken={"https://x/1"})
    complete, detail = downloads.prepare(source, str(tmp_path), server)
    assert complete is False
    assert detail.startswith("1 of 3 files missing (first: demo/1.json: HTTPError")
    assert detail.endswith(f"re-run to resume, or put the files into {tmp_path}/demo/")
    server.broken.clear()
    assert downloads.prepare(source, str(tmp_path), server) == (
        True, f"3 files in {tmp_path}")
    assert [u for u, _ in server.requests].count("https://x/0") == 1  # kept, not re-fetched


def test_mmlu_archive_is_unpacked(tmp_path):
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        body = b"q,a,b,c,d,A\n"
        info = tarfile.TarInfo("data/dev/astronomy_dev.csv")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    server = FakeServer({downloads.MMLU_URL: archive.getvalue()})
    assert downloads.prepare(downloads.SOURCES["mmlu"], str(tmp_path), server)[0] is True
    assert (tmp_path / "mmlu/data/dev/astronomy_dev.csv").read_bytes() == b"q,a,b,c,d,A\n"


def test_what_each_name_reads():
    assert [s.name for s in downloads.sources_for("flan2022_submix")] == ["niv2", "t0_sf"]
    assert [s.name for s in downloads.sources_for("bbh_cot_3shot_snarks")] == ["bbh"]
    assert [s.name for s in downloads.sources_for("flan2022_t0_quarel_logic_test_fs_opt")] == \
        ["t0_sf"]
    assert downloads.sources_for("flan2021_rte_train") == []
    niv2 = downloads.SOURCES["niv2"].downloads()
    assert len(niv2) == 1556
    assert not [d for d in niv2 if "mmlu" in d.dest and "task6" in d.dest]
    assert len(downloads.SOURCES["t0_sf"].downloads()) == 193
    assert len(downloads.SOURCES["bbh"].downloads()) == 54


def test_data_prepare_table_goes_on_after_a_failed_source(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_prepare(source, root=None, opener=None, log=print):
        calls.append(source.name)
        if source.name == "mmlu":
            return False, "1 of 1 files missing (first: mmlu/data.tar: URLError)"
        return True, "ok"

    monkeypatch.setattr(downloads, "prepare", fake_prepare)
    assert data_cli.main(["prepare", "flan2022", "--datasets", "mmlu,bbh"]) == 1
    out = capsys.readouterr().out
    assert calls == ["mmlu", "bbh"]
    assert "files:mmlu" in out and "files:bbh" in out and "1 ready, 0 needs manual " \
        "download, 1 failed" in out
    assert data_cli.main(["prepare", "bbh"]) == 0
