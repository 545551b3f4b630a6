#!/usr/bin/env python3
"""Exports the TorchScript test fixtures with Debian's torch (run at build time by tests/CMakeLists.txt)."""
import os
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
