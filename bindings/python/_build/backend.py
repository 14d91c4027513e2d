"""A PEP 517 build backend that needs only the standard library.

The package is pure Python (ctypes), so a wheel is a zip of src/libvmm plus the
.dist-info files of the wheel spec; building one needs no setuptools, and pip, which
installs `requires = []` into its isolated build environment, downloads nothing. This
makes `pip install bindings/python` work offline on any Python with pip (the machines
reach no package index). Hooks: build_wheel, build_editable (PEP 660: a .pth file
pointing at src/), build_sdist, and the get_requires_* ones.
"""
import base64
import hashlib
import os
import re
import tarfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
PKG = "libvmm"


def _project():
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    try:
        import tomllib
        p = tomllib.loads(text)["project"]
        return p["name"], p["version"], p.get("description", ""), p.get("requires-python", "")
    except ImportError:  # Python < 3.11: the few keys we need, by pattern
        def key(k):
            m = re.search(r'^%s\s*=\s*"([^"]*)"' % re.escape(k), text, re.M)
            return m.group(1) if m else ""
        return key("name"), key("version"), key("description"), key("requires-python")


def _metadata():
    name, version, summary, requires_python = _project()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if summary:
        lines.append(f"Summary: {summary}")
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    readme = os.path.join(ROOT, "README.md")
    body = ""
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        with open(readme, encoding="utf-8") as f:
            body = "\n" + f.read()
    return name, version, "\n".join(lines) + "\n" + body


def _wheel_files(editable):
    """(archive name, bytes) of the package itself."""
    if editable:
        yield f"__editable__.{PKG}.pth", (SRC + "\n").encode()
        return
    pkg = os.path.join(SRC, PKG)
    for dirpath, dirnames, filenames in os.walk(pkg):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith((".pyc", ".pyo")):
                continue
            full = os.path.join(dirpath, fn)
            arc = os.path.relpath(full, SRC).replace(os.sep, "/")
            with open(full, "rb") as f:
                yield arc, f.read()


def _record_hash(data):
    d = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(d).rstrip(b"=").decode()


def _build(wheel_directory, editable):
    name, version, metadata = _metadata()
    dist = f"{name.replace('-', '_')}-{version}"
    wheel_name = f"{dist}-py3-none-any.whl"
    info = f"{dist}.dist-info"
    files = list(_wheel_files(editable))
    files.append((f"{info}/METADATA", metadata.encode()))
    files.append((f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: libvmm-backend\n"
                  b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    files.append((f"{info}/top_level.txt", (PKG + "\n").encode()))
    record = "".join(f"{arc},{_record_hash(data)},{len(data)}\n" for arc, data in files)
    record += f"{info}/RECORD,,\n"
    files.append((f"{info}/RECORD", record.encode()))
    os.makedirs(wheel_directory, exist_ok=True)
    path = os.path.join(wheel_directory, wheel_name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in files:
            zi = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
    return wheel_name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, editable=False)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, editable=True)


def build_sdist(sdist_directory, config_settings=None):
    name, version, _ = _metadata()
    base = f"{name}-{version}"
    os.makedirs(sdist_directory, exist_ok=True)
    path = os.path.join(sdist_directory, base + ".tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for top in ("pyproject.toml", "README.md", "_build", "src"):
            full = os.path.join(ROOT, top)
            if os.path.exists(full):
                tar.add(full, arcname=f"{base}/{top}",
                        filter=lambda ti: None if "__pycache__" in ti.name else ti)
    return os.path.basename(path)
