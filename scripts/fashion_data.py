"""Fashion-MNIST from Debian's dataset-fashion-mnist: idx.gz readers and the demo preprocessing.

Images are padded from 28x28 to 32x32 with the background value and scaled to [-1, 1], the layout
every scoreflow demo network (diffusion model and feature network) expects.
"""
import gzip
import os
import sys

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx_gz(path):
    """Reads one gzip-compressed idx file (big-endian header: magic, dims) into a uint8 array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte payload
        raise ValueError(f"{path}: not an unsigned-byte idx file (magic {magic:#x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: payload has {data.size} bytes, header says {dims}")
    return data.reshape(dims)


def data_dir(path=None):
    """The dataset folder: --data, else $FASHION_MNIST_DIR, else Debian's location."""
    return path or os.environ.get("FASHION_MNIST_DIR") or DEFAULT_DIR


def load(split, path=None):
    """Returns (images uint8 [N, 28, 28], labels int64 [N]); exits with the apt command if missing."""
    root = data_dir(path)
    img_name, lbl_name = FILES[split]
    img_path, lbl_path = os.path.join(root, img_name), os.path.join(root, lbl_name)
    for p in (img_path, lbl_path):
        if not os.path.isfile(p):
            sys.exit(f"error: Fashion-MNIST file {p} not found; "
                     "install it with: apt-get install dataset-fashion-mnist")
    images = read_idx_gz(img_path)
    labels = read_idx_gz(lbl_path).astype(np.int64)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise ValueError(f"unexpected Fashion-MNIST shapes {images.shape}, {labels.shape}")
    return images, labels


def to_model_range(images_u8):
    """uint8 [N, 28, 28] -> float32 [N, 1, 32, 32] in [-1, 1], padded with -1 (the background)."""
    x = images_u8.astype(np.float32) / 127.5 - 1.0
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    return x[:, None, :, :]


def grid_png(path, images, nrow=8):
    """Writes images in [-1, 1], [N, 1, H, W], as one greyscale PNG grid (zlib only, no PIL)."""
    import struct
    import zlib
    n, _, h, w = images.shape
    ncol = (n + nrow - 1) // nrow
    pad = 2
    canvas = np.zeros((ncol * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.uint8)
    u8 = np.clip((images[:, 0] + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = u8[i]
    H, W = canvas.shape
    raw = b"".join(b"\x00" + canvas[y].tobytes() for y in range(H))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)
