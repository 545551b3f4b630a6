#!/usr/bin/env python3
"""Rewrites the scoreflow.json of a TorchScript archive in place, every other record byte-identical.

    /usr/bin/python3 scripts/set_metadata.py models/fashion_ddpm.pt '{"data_prep": {"pad": 2, "pad_value": -1}}'

The JSON argument is merged into the stored metadata (RFC 7386 merge patch: a null value deletes a
field). torch.jit.save would re-pickle data.pkl and the debug records; this script instead rewrites
only the scoreflow.json record (which PyTorch's writer puts first) and shifts the records after it
by a multiple of 64 bytes, so the tensors keep the 64-byte alignment PyTorch's writer gave them.
The result is reloaded with torch.jit.load and compared record by record with the original; on any
difference the original is kept and the script exits non-zero.
"""
import json
import os
import struct
import sys
import zipfile

LOCAL = b"PK\x03\x04"


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def rewrite(raw: bytes, name: str, text: bytes) -> bytes:
    z = zipfile.ZipFile(__import__("io").BytesIO(raw))
    infos = z.infolist()
    if infos[0].filename != name or infos[0].header_offset != 0:
        sys.exit(f"error: {name} is not the archive's first record; re-export the model instead")
    first_end = infos[1].header_offset
    # New first record: local header (no data descriptor), an extra field padding the record so
    # that the next one moves by a multiple of 64 bytes, then the JSON.
    fname = name.encode()
    crc = zipfile.crc32(text) & 0xFFFFFFFF
    base = 30 + len(fname) + len(text)
    pad = (first_end - (base + 4)) % 64  # extra = 4-byte header + pad bytes
    extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # "FB", as PyTorch's writer pads
    header = LOCAL + struct.pack("<HHHHHIIIHH", 20, 0x800, 0, 0, 0, crc, len(text), len(text), len(fname),
                                 len(extra))
    record = header + fname + extra + text
    delta = len(record) - first_end
    assert delta % 64 == 0
    # Central directory: the records' offsets move by delta; the first entry gets new sizes/CRC.
    eocd = raw.rfind(b"PK\x05\x06")
    z64 = raw.rfind(b"PK\x06\x06")
    z64loc = raw.rfind(b"PK\x06\x07")
    if z64 < 0 or z64loc < 0:
        sys.exit("error: expected a zip64 end record (PyTorch's writer always adds one)")
    cd_size, cd_offset = struct.unpack("<QQ", raw[z64 + 40:z64 + 56])
    cd = bytearray(raw[cd_offset:cd_offset + cd_size])
    pos = 0
    first = True
    while pos < len(cd):
        assert cd[pos:pos + 4] == b"PK\x01\x02"
        n, m, k = struct.unpack("<HHH", cd[pos + 28:pos + 34])
        offset = struct.unpack("<I", cd[pos + 42:pos + 46])[0]
        if offset == 0xFFFFFFFF:
            sys.exit("error: zip64 local offsets are not handled")
        if first:
            struct.pack_into("<H", cd, pos + 8, 0x800)  # flags: UTF-8 name, no data descriptor
            struct.pack_into("<III", cd, pos + 16, crc, len(text), len(text))
            first = False
        else:
            struct.pack_into("<I", cd, pos + 42, offset + delta)
        pos += 46 + n + m + k
    tail = bytearray(raw[cd_offset + cd_size:])
    # zip64 end record: offset of the central directory; locator: offset of the zip64 end record;
    # end record: the 32-bit copy of the offset (0xFFFFFFFF stays as it is).
    t64, tloc, teocd = z64 - cd_offset - cd_size, z64loc - cd_offset - cd_size, eocd - cd_offset - cd_size
    struct.pack_into("<Q", tail, t64 + 48, cd_offset + delta)
    struct.pack_into("<Q", tail, tloc + 8, z64 + delta)
    old32 = struct.unpack("<I", tail[teocd + 16:teocd + 20])[0]
    if old32 != 0xFFFFFFFF:
        struct.pack_into("<I", tail, teocd + 16, cd_offset + delta)
    return record + raw[first_end:cd_offset] + bytes(cd) + bytes(tail)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, patch_text = sys.argv[1], sys.argv[2]
    import torch

    raw = open(path, "rb").read()
    z = zipfile.ZipFile(path)
    name = z.infolist()[0].filename
    if not name.endswith("/extra/scoreflow.json"):
        sys.exit(f"error: {path}: first record is {name}, not scoreflow.json")
    meta = merge_patch(json.loads(z.read(name)), json.loads(patch_text))
    text = json.dumps(meta).encode()
    out = rewrite(raw, name, text)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(out)
    # Checks: loads, metadata is the new one, every other record identical, tensors 64-aligned.
    files = {"scoreflow.json": ""}
    torch.jit.load(tmp, map_location="cpu", _extra_files=files)
    a, b = zipfile.ZipFile(path), zipfile.ZipFile(tmp)
    problems = []
    if json.loads(files["scoreflow.json"]) != meta:
        problems.append("stored metadata differs")
    if [i.filename for i in a.infolist()] != [i.filename for i in b.infolist()]:
        problems.append("record list differs")
    for i in a.infolist()[1:]:
        if a.read(i.filename) != b.read(i.filename):
            problems.append(f"{i.filename} differs")
    for i in b.infolist():
        if "/data/" in i.filename:
            n, m = struct.unpack("<HH", out[i.header_offset + 26:i.header_offset + 30])
            if (i.header_offset + 30 + n + m) % 64:
                problems.append(f"{i.filename} is not 64-byte aligned")
    if problems:
        os.remove(tmp)
        sys.exit("error: rewrite check failed: " + "; ".join(problems[:5]))
    os.replace(tmp, path)
    print(f"{path}: scoreflow.json = {text.decode()} ({len(out)} bytes, was {len(raw)}; other records identical)")


if __name__ == "__main__":
    main()
