"""Codec runners behind one interface.

Every codec turns (source PNG, quality point) into (compressed file, decoded PNG). A runner only
builds command lines (pure, unit-tested) and runs them; metrics are computed elsewhere.

Quality points are chosen so that the Kodak sweep covers roughly 0.05-2 bpp with 6-7 points each
(the lowest rates are out of reach for JPEG).
"""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image


@dataclass
class Codec:
    name: str
    packages: tuple[str, ...]          # Debian packages that provide the tools
    qualities: tuple                   # sweep, from low to high rate
    ext: str = ""
    needs_ppm: bool = False            # encoder reads PPM, not PNG
    tools: tuple[str, ...] = field(default_factory=tuple)

    def encode_cmd(self, src: Path, dst: Path, q) -> list[str]:
        raise NotImplementedError

    def decode_cmd(self, src: Path, dst: Path) -> list[str]:
        raise NotImplementedError

    def available(self) -> bool:
        return all(shutil.which(t) for t in self.tools)

    def describe(self) -> str:
        return " ".join(self.encode_cmd(Path("IN"), Path("OUT" + self.ext), "Q"))

    def command_lines(self) -> str:
        """Both command lines, with placeholders: a record depends on them as on the tools' versions."""
        return self.describe() + " ; " + " ".join(self.decode_cmd(Path("OUT" + self.ext), Path("DEC")))

    def run(self, src: Path, workdir: Path, q) -> dict:
        """Encode + decode; returns bytes, timings and the decoded PNG path."""
        workdir.mkdir(parents=True, exist_ok=True)
        stem = f"{src.stem}_{self.name}_{q}"
        enc_in = src
        if self.needs_ppm:
            enc_in = workdir / f"{stem}.ppm"
            Image.open(src).convert("RGB").save(enc_in)
        enc = workdir / f"{stem}{self.ext}"
        dec = workdir / f"{stem}.dec.png"
        t0 = time.perf_counter()
        subprocess.run(self.encode_cmd(enc_in, enc, q), check=True, capture_output=True)
        t1 = time.perf_counter()
        raw = dec
        if self.name == "jpeg":               # djpeg writes PPM
            raw = workdir / f"{stem}.dec.ppm"
        subprocess.run(self.decode_cmd(enc, raw), check=True, capture_output=True)
        t2 = time.perf_counter()
        if raw != dec:
            Image.open(raw).convert("RGB").save(dec)
            raw.unlink()
        if enc_in != src:
            enc_in.unlink()
        return {"bytes": enc.stat().st_size, "encoded": str(enc), "decoded": str(dec),
                "encode_s": t1 - t0, "decode_s": t2 - t1}


class JPEG(Codec):
    def encode_cmd(self, src, dst, q):
        return ["cjpeg", "-optimize", "-quality", str(q), "-outfile", str(dst), str(src)]

    def decode_cmd(self, src, dst):
        return ["djpeg", "-ppm", "-outfile", str(dst), str(src)]


class WebP(Codec):
    def encode_cmd(self, src, dst, q):
        return ["cwebp", "-quiet", "-m", "6", "-q", str(q), str(src), "-o", str(dst)]

    def decode_cmd(self, src, dst):
        return ["dwebp", "-quiet", str(src), "-o", str(dst)]


class AVIF(Codec):
    # libavif 0.11 (bookworm) has no -q: the colour quantizer (0-63, lower = better) is pinned
    # with --min/--max. Default YUV 4:4:4 from RGB PNG; one thread to keep the pool bounded.
    def encode_cmd(self, src, dst, q):
        return ["avifenc", "-c", "aom", "-s", "6", "-j", "1", "--min", str(q), "--max", str(q),
                str(src), str(dst)]

    def decode_cmd(self, src, dst):
        return ["avifdec", "-j", "1", str(src), str(dst)]


class JXL(Codec):
    # Swept by Butteraugli distance (-d), libjxl's native rate knob; effort 7 (default).
    def encode_cmd(self, src, dst, q):
        return ["cjxl", str(src), str(dst), "-e", "7", "-d", str(q), "--num_threads=1", "--quiet"]

    def decode_cmd(self, src, dst):
        return ["djxl", str(src), str(dst), "--num_threads=1", "--quiet"]


CODECS: dict[str, Codec] = {
    "jpeg": JPEG("jpeg", ("libjpeg-turbo-progs",), (5, 10, 20, 40, 65, 85), ".jpg", True,
                 ("cjpeg", "djpeg")),
    "webp": WebP("webp", ("webp",), (0, 5, 20, 45, 75, 92), ".webp", False, ("cwebp", "dwebp")),
    "avif": AVIF("avif", ("libavif-bin",), (62, 55, 48, 40, 30, 20), ".avif", False,
                 ("avifenc", "avifdec")),
    "jxl": JXL("jxl", ("libjxl-tools",), (15, 8, 4, 2.5, 1.5, 0.8), ".jxl", False, ("cjxl", "djxl")),
}


def debian_packages(names) -> list[str]:
    pk = []
    for n in names:
        pk += list(CODECS[n].packages)
    return pk


# --- PSIC ---------------------------------------------------------------------------------------

@dataclass
class PSIC:
    binary: Path
    backend: str = "cpu"
    levels: int = 8
    samples: int = 4
    mean: bool = True
    name: str = "psic"

    def encode_cmd(self, src: Path, dst: Path, jobs: int = 1) -> list[str]:
        return [str(self.binary), "encode", str(src), "-o", str(dst), "--force", "--backend", self.backend,
                "--jobs", str(jobs)]

    def truncate_cmd(self, src: Path, dst: Path, level: int) -> list[str]:
        return [str(self.binary), "truncate", str(src), "--levels", str(level), "-o", str(dst), "--force"]

    def decode_cmd(self, src: Path, dst: Path, seed: int = 0, samples: int = 1,
                   levels: int | None = None, details: str = "sampled") -> list[str]:
        cmd = [str(self.binary), "decode", str(src), "-o", str(dst), "--force", "--seed", str(seed),
               "--backend", self.backend, "--jobs", "1"]
        if details != "sampled":
            cmd += ["--details", details]
        if samples > 1:
            cmd += ["--samples", str(samples)]
        if levels is not None:
            cmd += ["--levels", str(levels)]
        return cmd

    def run(self, src: Path, workdir: Path, env=None) -> dict:
        """Encodes all levels once, cuts the stream after each level (its bytes are the rate at
        that level) and decodes: seed 0 at every level, and `samples` seeds (0..M-1) at levels < L
        (sample s0 is the seed-0 decode); with `mean`, also the mean-details decode at levels < L
        (`mean_decoded`; at L nothing is filled and it equals the seed-0 decode)."""
        workdir.mkdir(parents=True, exist_ok=True)
        full = workdir / f"{src.stem}.psic"
        t0 = time.perf_counter()
        subprocess.run(self.encode_cmd(src, full), check=True, capture_output=True, env=env)
        out = {"encode_s": time.perf_counter() - t0, "levels": []}
        for l in range(1, self.levels + 1):
            cut = workdir / f"{src.stem}_l{l}.psic"
            if l == self.levels:
                shutil.copyfile(full, cut)
            else:
                subprocess.run(self.truncate_cmd(full, cut, l), check=True, capture_output=True)
            t0 = time.perf_counter()
            if l < self.levels and self.samples > 1:
                base = workdir / f"{src.stem}_l{l}.png"
                subprocess.run(self.decode_cmd(cut, base, seed=0, samples=self.samples),
                               check=True, capture_output=True, env=env)
                decs = [str(workdir / f"{src.stem}_l{l}-s{s}.png") for s in range(self.samples)]
            else:
                dec = workdir / f"{src.stem}_l{l}.png"
                subprocess.run(self.decode_cmd(cut, dec, seed=0), check=True, capture_output=True,
                               env=env)
                decs = [str(dec)]
            entry = {"level": l, "bytes": cut.stat().st_size, "stream": str(cut),
                     "decoded": decs, "decode_s": time.perf_counter() - t0}
            if self.mean:
                entry["mean_decoded"] = decs[0]
                if l < self.levels:
                    mean = workdir / f"{src.stem}_l{l}-mean.png"
                    subprocess.run(self.decode_cmd(cut, mean, details="mean"), check=True, capture_output=True,
                                   env=env)
                    entry["mean_decoded"] = str(mean)
            out["levels"].append(entry)
        return out
