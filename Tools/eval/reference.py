"""Committed results of the other codecs, so that re-measuring PSIC does not re-measure them.

The JPEG / WebP / AVIF / JPEG XL sweeps over Kodak take about an hour on two cores, and their
numbers change only when the codec or metric tools do, while PSIC's change with every shipped
model. A reference file (Tools/eval/reference/<image folder>.json) holds those codecs' cached
records together with what made them: each image file's SHA-256, each codec's encode and decode
command lines, and the versions of its Debian packages and of the metric tools. `evaluate.py`
copies a record into its cache only when the image, the command lines and every version match
this machine's; anything else is measured as before.
Encode and decode times in the records are the machine's that wrote the file (speed figures come
from `speed.py`, never from these records).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

FORMAT = 1


def _run(cmd: list[str]) -> str | None:
    """The command's standard output, or None when it fails or does not exist (not Debian): an
    unknown version then matches no reference, so everything is measured."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except OSError:
        return None
    return r.stdout if r.returncode == 0 else None


def _debian_version(package: str) -> str:
    return (_run(["dpkg-query", "-W", "-f", "${Version}", package]) or "").strip()


def _pypi_version(module: str) -> str:
    from importlib import metadata
    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return ""


# Libraries whose updates do not change a codec's output; left out so that a point release of
# the C runtime does not make every reference result stale.
_BASE_LIBRARIES = {"libc6", "libgcc-s1", "libstdc++6"}


def _library_packages(tools: tuple[str, ...]) -> set[str]:
    """The Debian packages of the shared libraries the `tools` binaries load (libaom3 for
    avifenc, libwebp7 for cwebp, ...): the code that actually encodes and decodes."""
    packages = set()
    for tool in tools:
        exe = shutil.which(tool)
        if not exe:
            continue
        ldd = _run(["ldd", exe]) or ""
        libs = [line.split("=>")[1].split("(")[0].strip() for line in ldd.splitlines() if "=>" in line]
        for lib in filter(None, libs):
            # dpkg may know the path before or after the /usr-merge symlinks.
            owner = _run(["dpkg", "-S", str(Path(lib).resolve())]) or _run(["dpkg", "-S", lib])
            if owner:
                packages.add(owner.split(":")[0])
    return packages - _BASE_LIBRARIES


def toolchain(codecs: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]]) -> dict:
    """What a record of each codec depends on besides the image: its encode and decode command
    lines, the versions of its Debian packages and of the libraries its tools load, and of the
    metric tools every record shares. `codecs` maps a codec to (its packages, its tool binaries,
    its command lines with placeholders)."""
    shared = {"butteraugli": _debian_version("butteraugli"), "ssimulacra2": _pypi_version("ssimulacra2"),
              "pytorch-msssim": _pypi_version("pytorch-msssim")}
    out = {}
    for c, (packages, tools, commands) in codecs.items():
        names = sorted(set(packages) | _library_packages(tools))
        out[c] = {**{p: _debian_version(p) for p in names}, **shared, "command lines": commands}
    return out


def image_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cache_path(out: Path, codec: str, image: str, quality) -> Path:
    """Where evaluate.py caches the record of (codec, image stem, quality)."""
    return Path(out) / "cache" / codec / f"{image}_q{quality}.json"


def seed_cache(reference: Path, out: Path, images: list[Path], tools: dict) -> dict[str, str]:
    """Copies the reference's records whose image and tool versions match into `out`'s cache
    (never over an existing entry). Returns, per codec of both `tools` and the reference, what
    happened."""
    ref = json.loads(Path(reference).read_text())
    if ref.get("format") != FORMAT:
        return {c: f"reference format {ref.get('format')} not {FORMAT}: measured" for c in ref.get("toolchain", {})}
    hashes = {p.stem: image_hash(p) for p in images}
    same_images = {stem for stem, h in ref["images"].items() if hashes.get(stem) == h}
    report = {}
    for codec, versions in ref["toolchain"].items():
        if codec not in tools:
            continue
        if tools[codec] != versions:
            changed = sorted(k for k in versions.keys() | tools[codec].keys() if versions.get(k) != tools[codec].get(k))
            report[codec] = "other tool versions or command lines (" + ", ".join(changed) + "): measured"
            continue
        seeded = 0
        for r in ref["records"]:
            if r["codec"] != codec or r["image"] not in same_images:
                continue
            path = cache_path(out, r["codec"], r["image"], r["quality"])
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(r))
                seeded += 1
        report[codec] = f"{seeded} results from the reference"
    return report


def write_reference(path: Path, records: list[dict], images: list[Path], tools: dict) -> int:
    """Writes the non-PSIC records (one run's, with `tools` the versions that made them)."""
    kept = sorted((r for r in records if r["codec"] in tools),
                  key=lambda r: (r["codec"], r["image"], str(r["quality"])))
    doc = {"format": FORMAT, "toolchain": {c: tools[c] for c in sorted({r["codec"] for r in kept})},
           "images": {p.stem: image_hash(p) for p in images}, "records": kept}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=0, sort_keys=True) + "\n")
    return len(kept)
