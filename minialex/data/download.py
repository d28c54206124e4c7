"""Fetching the official data files, only when asked (``--download``), and checking them.

    download("mnist", "data/mnist")        # the four .gz files, each checked against its MD5

Nothing is fetched unless the user asks: the data sets are read from ``--data-dir``, and a missing
file is an error that says where to get it. With ``--download``, each missing file is fetched with
``urllib`` from the official address (a short timeout), written to a ``.part`` file while its MD5
is computed, and renamed into place only when the MD5 is the published one. A file already there
is checked too: a damaged one is reported, never silently used or replaced. Without a network the
message says which file to fetch from where, and where to put it, so it can be done by hand.

Why MD5: it is what the data sets' authors (and torchvision) publish. It guards against a
truncated or damaged download, not against an attacker (MD5 collisions are cheap); the pickled
CIFAR-10 files are only unpickled after their MD5 matches (``minialex.data.cifar``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass

__all__ = ["DataError", "SOURCES", "Source", "md5_file", "check_md5", "download", "default_data_dir", "TIMEOUT"]

TIMEOUT = 15.0          # seconds to wait for the server before calling it "no network"
_CHUNK = 1 << 20


class DataError(ValueError):
    """A data set is missing, incomplete or corrupt. The message is one line: what is wrong and
    what to do. (The command-line tools turn it into ``error: ...`` and exit code 2.)"""


@dataclass(frozen=True)
class Source:
    url: str                # the folder the files are fetched from (ends with /)
    files: dict             # file name -> MD5 (hex) of the official file
    home: str               # the page that describes the data set


SOURCES = {
    # torchvision's mirror of Yann LeCun's files (the original site now asks for a login)
    "mnist": Source("https://ossci-datasets.s3.amazonaws.com/mnist/", {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }, "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": Source("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }, "https://github.com/zalandoresearch/fashion-mnist"),
    # the binary version: plain records, nothing to unpickle
    "cifar10": Source("https://www.cs.toronto.edu/~kriz/", {
        "cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530",
    }, "https://www.cs.toronto.edu/~kriz/cifar.html"),
}


def default_data_dir(name: str) -> str:
    """Where a data set's files are looked for when there is no ``--data-dir``:
    ``$MINIALEX_DATA/<name>``, else ``data/<name>`` in the current folder."""
    return os.path.join(os.environ.get("MINIALEX_DATA") or "data", name)


def md5_file(path) -> str:
    """The MD5 of a file, read in 1 MiB chunks (hex)."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_md5(path, expected: str, what: str = "") -> None:
    """Raise a DataError unless the file's MD5 is ``expected``."""
    actual = md5_file(path)
    if actual != expected:
        raise DataError(f"checksum mismatch: {path} has MD5 {actual}, the official file {expected}{what}; the file "
                        "is damaged, truncated or not the official one: delete it and download it again "
                        "(--download)")


def download(name: str, root, url: str | None = None, timeout: float | None = None, log=print) -> list:
    """Fetch the official files of data set ``name`` into the folder ``root`` (created if needed)
    and check their MD5; files already there are checked, not fetched again. ``url`` replaces the
    official folder (a mirror; tests use an address with nothing behind it). Returns the paths."""
    if name not in SOURCES:
        raise DataError(f"--download: there is nothing to download for the {name} data set; its files are your "
                        f"own (pass --data-dir)")
    source = SOURCES[name]
    base = url or source.url
    root = os.fspath(root)
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as err:
        raise DataError(f"--download: cannot create the folder {root} ({err.strerror or err}); pass another "
                        "--data-dir") from err
    paths = []
    for filename, md5 in source.files.items():
        path = os.path.join(root, filename)
        if os.path.exists(path):
            check_md5(path, md5)
        else:
            _fetch(base + filename, path, md5, timeout or TIMEOUT, log, root)
        paths.append(path)
    return paths


def _fetch(url, path, md5, timeout, log, root):
    """Stream ``url`` to ``path + '.part'``, hashing as it goes; rename it to ``path`` when the
    MD5 matches. Any failure removes the partial file."""
    name = os.path.basename(path)
    by_hand = f"download {name} from {url} and put it in {root}"
    part = path + ".part"
    log(f"downloading {url}")
    h = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            for block in iter(lambda: response.read(_CHUNK), b""):
                h.update(block)
                out.write(block)
    except urllib.error.HTTPError as err:
        _remove(part)
        raise DataError(f"--download: the server answered HTTP {err.code} ({err.reason}) for {url}; {by_hand} "
                        "(a browser may get it)") from err
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, http.client.HTTPException) as err:
        _remove(part)
        reason = getattr(err, "reason", None) or err
        raise DataError(f"no network ({' '.join(str(reason).split()) or type(err).__name__}): {by_hand}") from err
    except OSError as err:                          # the local file could not be written
        _remove(part)
        raise DataError(f"--download: cannot write {part} ({err.strerror or err}); free some space or pass another "
                        "--data-dir") from err
    except BaseException:
        _remove(part)
        raise
    if h.hexdigest() != md5:
        _remove(part)
        raise DataError(f"checksum mismatch: the file downloaded from {url} has MD5 {h.hexdigest()}, the official "
                        f"file {md5}; it was not kept: try again later, or {by_hand}")
    os.replace(part, path)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
