#!/usr/bin/env python3
"""Writes the hostile-input corpus for tests/hostile_test.cpp into OUT/bad (run at build time).

Every file is small and deliberately broken in one way; the file name says how. Models go to
bad/models/, --init-noise archives to bad/noise/, datasets (for builtin:empirical:data=...) to
bad/data/ (image folders are directories holding one broken image each).
"""
import gzip
import io
import json
import os
import struct
import sys
import zipfile
import zlib

import numpy as np
import torch

root = os.path.join(sys.argv[1], "bad")
rng = np.random.RandomState(1234)
META = {
    "prediction": "eps",
    "schedule": {"type": "vp_discrete", "betas": "linear", "num_train_steps": 1000},
    "time_input": "index",
    "shape": [1, 8, 8],
}


def path(*parts):
    p = os.path.join(root, *parts)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)


# ---- models -------------------------------------------------------------------------------------

class Zero(torch.nn.Module):
    def forward(self, x, t):
        return torch.zeros_like(x)


class Throws(torch.nn.Module):
    def forward(self, x, t):
        if x.shape[0] > 0:
            raise RuntimeError("hostile forward refuses to run")
        return x


class NanBelow(torch.nn.Module):
    """eps = 0 at high noise, NaN for timesteps below 500."""

    def forward(self, x, t):
        bad = (t < 500)[:, None, None, None].expand_as(x)
        return torch.where(bad, torch.full_like(x, float("nan")), torch.zeros_like(x))


class InfOut(torch.nn.Module):
    def forward(self, x, t):
        return torch.full_like(x, float("inf"))


class ReturnsTuple(torch.nn.Module):
    def forward(self, x, t):
        return x, t


class WrongRank(torch.nn.Module):
    def forward(self, x, t):
        return x.flatten(1)


def scripted_bytes(module, meta_text=None):
    buf = io.BytesIO()
    extra = {"scoreflow.json": meta_text} if meta_text is not None else {}
    torch.jit.save(torch.jit.script(module), buf, _extra_files=extra)
    return buf.getvalue()


def model(name, module, meta):
    write("models/" + name, scripted_bytes(module, meta if isinstance(meta, str) or meta is None else json.dumps(meta)))


good = scripted_bytes(Zero(), json.dumps(META))
write("models/empty.pt", b"")
write("models/random_bytes.pt", rng.bytes(2048))
write("models/random_after_zip_magic.pt", b"PK\x03\x04" + rng.bytes(2048))
write("models/truncated_half.pt", good[: len(good) // 2])
write("models/truncated_tail.pt", good[:-30])
flipped = bytearray(good)
for i in range(len(flipped) // 3, len(flipped) // 3 + 64):
    flipped[i] ^= 0xFF
write("models/corrupt_middle.pt", bytes(flipped))
zbuf = io.BytesIO()
with zipfile.ZipFile(zbuf, "w") as z:
    z.writestr("hello.txt", "a zip file, but not a TorchScript archive")
write("models/plain_zip.pt", zbuf.getvalue())
os.makedirs(path("models/a_directory.pt"), exist_ok=True)

model("meta_not_json.pt", Zero(), "{not json")
model("meta_is_list.pt", Zero(), "[1, 2, 3]")
model("meta_empty_string.pt", Zero(), "")
model("meta_shape_string.pt", Zero(), dict(META, shape="1x8x8"))
model("meta_shape_negative.pt", Zero(), dict(META, shape=[1, -8, 8]))
model("meta_shape_huge.pt", Zero(), dict(META, shape=[4, 65536, 65536]))
model("meta_shape_float.pt", Zero(), dict(META, shape=[1, 8.5, 8]))
model("meta_schedule_string.pt", Zero(), dict(META, schedule="linear"))
model("meta_schedule_unknown.pt", Zero(), dict(META, schedule={"type": "cosmic"}))
model("meta_beta_string.pt", Zero(), dict(META, schedule={"type": "vp_discrete", "beta_start": "small"}))
model("meta_train_steps_zero.pt", Zero(), dict(META, schedule={"type": "vp_discrete", "num_train_steps": 0}))
model("meta_edm_sigma_inverted.pt", Zero(), dict(META, time_input="sigma",
                                                  schedule={"type": "edm", "sigma_min": 80, "sigma_max": 0.002}))
model("meta_prediction_unknown.pt", Zero(), dict(META, prediction="epsilon"))
model("meta_prediction_number.pt", Zero(), dict(META, prediction=3))
model("meta_unknown_field.pt", Zero(), dict(META, colour="blue"))
model("meta_classes_negative.pt", Zero(), dict(META, num_classes=-2))
model("meta_data_range_inverted.pt", Zero(), dict(META, data_range=[1, -1]))
model("meta_missing.pt", Zero(), None)
model("forward_throws.pt", Throws(), META)
model("forward_nan_below.pt", NanBelow(), META)
model("forward_inf.pt", InfOut(), META)
model("forward_tuple.pt", ReturnsTuple(), META)
model("forward_wrong_rank.pt", WrongRank(), META)

# ---- --init-noise archives (for a [1, 8, 8] model, seeds 0-1) -----------------------------------


def npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


noise = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
good_npz = npz_bytes(noise=noise)
write("noise/empty.npz", b"")
write("noise/random_bytes.npz", rng.bytes(1024))
write("noise/truncated.npz", good_npz[: len(good_npz) // 2])
write("noise/no_noise_key.npz", npz_bytes(eps=noise))
write("noise/wrong_shape.npz", npz_bytes(noise=noise[:, :, :4]))
write("noise/too_few_rows.npz", npz_bytes(noise=noise[:1]))
write("noise/string_dtype.npz", npz_bytes(noise=np.array(["a", "b"])))
write("noise/complex_dtype.npz", npz_bytes(noise=noise.astype(np.complex64)))
write("noise/int_dtype.npz", npz_bytes(noise=np.zeros((2, 1, 8, 8), dtype=np.int64)))  # not normal draws
write("noise/big_endian.npz", npz_bytes(noise=noise.astype(">f4")))
write("noise/nan_noise.npz", npz_bytes(noise=np.full_like(noise, np.nan)))
bad_crc = bytearray(good_npz)
bad_crc[100] ^= 0x55  # inside the member data: CRC-32 no longer matches
write("noise/bad_crc.npz", bytes(bad_crc))
lying = bytearray(npz_bytes(noise=noise))
# Rewrite the .npy header's shape to promise far more data than the member holds.
at = lying.find(b"(2, 1, 8, 8)")
lying[at:at + 12] = b"(9, 9, 9, 9)"
write("noise/lying_npy_header.npz", bytes(lying))

# ---- datasets (builtin:empirical:data=...) ------------------------------------------------------


def png_bytes(width, height, pixels=None, channels=1):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    color = {1: 0, 3: 2}[channels]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    if pixels is None:
        idat = zlib.compress(b"\x00" * 16)
    else:
        idat = zlib.compress(b"".join(b"\x00" + bytes(row) for row in pixels))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


good_png = png_bytes(8, 8, rng.randint(0, 255, (8, 8)).astype(np.uint8))
write("data/img_empty/a.png", b"")
write("data/img_random/a.png", rng.bytes(512))
write("data/img_truncated/a.png", good_png[: len(good_png) - 30])
write("data/img_huge_header/a.png", png_bytes(100000, 100000))
write("data/img_zero_width/a.png", png_bytes(0, 8))
write("data/img_mixed_sizes/a.png", good_png)
write("data/img_mixed_sizes/b.png", png_bytes(4, 4, np.zeros((4, 4), np.uint8)))
bmp = bytearray(b"BM" + struct.pack("<IHHI", 54 + 8 * 8 * 3, 0, 0, 54))
bmp += struct.pack("<IiiHHIIiiII", 40, 8, 8, 1, 24, 0, 8 * 8 * 3, 2835, 2835, 0, 0) + bytes(8 * 8 * 3)
write("data/img_truncated_bmp/a.bmp", bytes(bmp[:100]))
os.makedirs(path("data/img_no_images/x"), exist_ok=True)
write("data/img_no_images/readme.txt", b"no images here")


def idx_bytes(n, h, w, payload_len=None, dtype=0x08, ndim=3):
    header = bytes([0, 0, dtype, ndim]) + b"".join(struct.pack(">I", d) for d in (n, h, w)[:ndim])
    return header + bytes(n * h * w if payload_len is None else payload_len)


write("data/idx_empty.idx", b"")
write("data/idx_lying_count.idx", idx_bytes(60000, 28, 28, payload_len=28 * 28 * 3))
write("data/idx_huge_dims.idx", idx_bytes(0xFFFFFFFF, 0xFFFF, 0xFFFF, payload_len=64))
write("data/idx_truncated_header.idx", idx_bytes(2, 8, 8)[:9])
write("data/idx_bad_magic.idx", b"\x12\x34" + idx_bytes(2, 8, 8)[2:])
write("data/idx_float_type.idx", idx_bytes(2, 8, 8, dtype=0x0D))
write("data/idx_labels_1d.idx", idx_bytes(10, 0, 0, payload_len=10, ndim=1))
write("data/idx_trailing_bytes.idx", idx_bytes(2, 8, 8) + b"extra")
write("data/idx_zero_images.idx", idx_bytes(0, 8, 8))
with open(path("data/idx_gz_truncated.idx.gz"), "wb") as f:
    f.write(zlib.compress(idx_bytes(50, 8, 8))[:60])  # zlib stream, not gzip, and cut short
gz = gzip.compress(idx_bytes(50, 8, 8))
write("data/idx_gz_cut.idx.gz", gz[: len(gz) // 2])
def npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


write("data/npy_truncated.npy", npy_bytes(rng.randint(0, 255, (4, 8, 8)).astype(np.uint8))[:-50])
write("data/npy_int64.npy", npy_bytes(np.zeros((4, 8, 8), np.int64)))
write("data/npy_fortran.npy", npy_bytes(np.asfortranarray(np.zeros((4, 8, 8, 3), np.uint8))))
write("data/npy_1d.npy", npy_bytes(np.zeros(16, np.uint8)))
write("data/npz_wrong_dtype.npz", npz_bytes(images=np.zeros((4, 8, 8), np.int32)))
write("data/npz_two_unnamed_keys.npz", npz_bytes(a=np.zeros((4, 8, 8), np.uint8), b=np.zeros((4, 8, 8), np.uint8)))
write("data/npz_truncated.npz", npz_bytes(images=np.zeros((4, 8, 8), np.uint8))[:200])
write("data/npz_no_arrays.npz", npz_bytes())
write("data/npz_bad_channels.npz", npz_bytes(images=np.zeros((4, 8, 8, 7), np.uint8)))
write("data/npz_empty_set.npz", npz_bytes(images=np.zeros((0, 8, 8), np.uint8)))
