"""ops/build.py's CUDA side, on machines without a CUDA toolkit too (CI): the choice of
architectures, and compiles of ops/*.cu with toolkits that pip installs from PyPI into a
cache (ops/build/pip-cuda/, git-ignored; a few seconds, pip's own cache makes reinstalls
cheaper still). A test skips, naming the reason, when pip cannot install its toolkit.

- CUDA 11.8, what mxnet-cu112 users have, for sm_60, sm_70 and sm_80 (P100, V100, A100):
  PyPI has no CUDA 11 nvcc (the nvidia-cuda-nvcc-cu11 wheel holds only ptxas and libnvvm,
  and nvidia-cuda-runtime-cu11 no libcudart_static.a), so these compiles cannot go through
  build.py. NVRTC 11.8 (nvidia-cuda-nvrtc-cu11) has nvcc 11.8's front end and code
  generator: it compiles each file's device code to SASS, which covers what differs between
  toolkits and architectures (C++17 in device code, intrinsics, code generation for sm_60).
  The host side is plain C++ that the host compiler builds anyway.
- CUDA 13 (nvidia-cuda-nvcc, -runtime, -crt, nvidia-nvvm: a complete toolkit in
  site-packages/nvidia/cu13): the real build, `ops/build.py --kernels-only` with CUDA_HOME
  there, linked with that toolkit's static runtime.
"""

import ctypes
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPS = os.path.join(ROOT, "ops")
CACHE = os.path.join(OPS, "build", "pip-cuda")
CUDA11_WHEELS = ["nvidia-cuda-nvrtc-cu11==11.8.89", "nvidia-cuda-runtime-cu11==11.8.89"]
CUDA13_WHEELS = [
    "nvidia-cuda-nvcc==13.5.37",
    "nvidia-cuda-runtime==13.5.37",
    "nvidia-cuda-crt==13.5.37",
    "nvidia-nvvm==13.5.37",
]
# nvcc --list-gpu-code of the two toolkits the project meets (ops/README.md).
CUDA11_CODES = "35 37 50 52 53 60 61 62 70 72 75 80 86 87 89 90".split()
CUDA13_CODES = "75 80 86 87 88 89 90 100 103 110 120 121".split()


def load_build():
    spec = importlib.util.spec_from_file_location("ssd_ops_build", os.path.join(OPS, "build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load_build()


# ---- choosing the architectures ---------------------------------------------------------


def test_default_without_gpu_is_what_the_toolkit_reaches():
    archs, reason = build.select_cuda_archs(CUDA11_CODES, release="11.8")
    assert archs == ["60", "70", "75", "80", "86", "89", "90"]
    assert "no GPU" in reason and "11.8" in reason
    assert build.select_cuda_archs(CUDA13_CODES)[0] == ["75", "80", "86", "89", "90"]


def test_gpus_decide_without_ssd_cuda_archs():
    assert build.select_cuda_archs(CUDA11_CODES, gpus=["80", "70"])[0] == ["70", "80"]
    # Newer than the toolkit knows: its newest architecture, whose PTX the card JIT-compiles.
    assert build.select_cuda_archs(CUDA11_CODES, gpus=["120"])[0] == ["90"]
    with pytest.raises(build.BuildError, match=r"sm_70 \(compute capability 7\.0\).*CUDA 13\.0"):
        build.select_cuda_archs(CUDA13_CODES, gpus=["70"], release="13.0")


def test_ssd_cuda_archs_wins_and_is_checked():
    archs, reason = build.select_cuda_archs(CUDA11_CODES, requested="80;60", gpus=["90"])
    assert (archs, reason) == (["60", "80"], "SSD_CUDA_ARCHS")
    with pytest.raises(build.BuildError, match="sm_60.*CUDA 13.0"):
        build.select_cuda_archs(CUDA13_CODES, requested="60;80", release="13.0")
    with pytest.raises(build.BuildError, match="expected numbers"):
        build.select_cuda_archs(CUDA13_CODES, requested="sm_80")


def test_gencode_adds_ptx_of_the_newest():
    assert build.gencode_flags(["60", "80"]) == [
        "-gencode=arch=compute_60,code=sm_60",
        "-gencode=arch=compute_80,code=sm_80",
        "-gencode=arch=compute_80,code=compute_80",
    ]


def fake_tool(folder, name, script):
    path = os.path.join(str(folder), name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + script)
    os.chmod(path, 0o755)
    return path


def test_nvcc_and_nvidia_smi_are_asked(tmp_path, monkeypatch):
    listing = "\\n".join("sm_" + c for c in CUDA11_CODES)
    nvcc = fake_tool(
        tmp_path,
        "nvcc",
        'case "$1" in --list-gpu-code) printf "%s\\n";; '
        '--version) echo "Cuda compilation tools, release 11.8, V11.8.89";; esac\n' % listing,
    )
    assert build.nvcc_gpu_codes(nvcc) == CUDA11_CODES
    assert build.nvcc_release(nvcc) == "11.8"
    old = fake_tool(
        tmp_path, "nvcc10", 'test "$1" = --version && echo "release 10.2, V10.2.89" || exit 1\n'
    )
    with pytest.raises(build.BuildError, match="CUDA 10.2.*CUDA >= 11.0"):
        build.nvcc_gpu_codes(old)
    fake_tool(tmp_path, "nvidia-smi", 'printf "8.0\\n8.6\\n8.0\\n"\n')
    monkeypatch.setenv("PATH", str(tmp_path), prepend=os.pathsep)
    assert build.machine_gpu_capabilities() == ["80", "86"]
    fake_tool(tmp_path, "nvidia-smi", 'echo "Field \\"compute_cap\\" is not valid"; exit 2\n')
    assert build.machine_gpu_capabilities() == []


# ---- toolkits from PyPI -----------------------------------------------------------------


def pip_toolkit(name, wheels):
    """A folder with ``wheels`` installed by ``pip --target``, kept in CACHE/name for the
    next run; skips the test when pip cannot install them (no network, other platform)."""
    target = os.path.join(CACHE, name)
    stamp = os.path.join(target, ".wheels")
    wanted = "\n".join(wheels)
    if os.path.isfile(stamp):
        with open(stamp) as f:
            if f.read() == wanted:
                return target
    shutil.rmtree(target, ignore_errors=True)
    partial = target + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--quiet"]
    cmd += ["--disable-pip-version-check", "--target", partial, *wheels]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        lines = (proc.stderr + proc.stdout).strip().splitlines()
        why = None if proc.returncode == 0 else lines[-1] if lines else "pip failed"
    except subprocess.TimeoutExpired:
        why = "timed out"
    if why:
        shutil.rmtree(partial, ignore_errors=True)
        pytest.skip("pip cannot install %s: %s" % (" ".join(wheels), why))
    with open(os.path.join(partial, ".wheels"), "w") as f:
        f.write(wanted)
    os.replace(partial, target)
    return target


FATBIN_MAGIC = struct.pack("<I", 0xBA55ED50)


def fatbin_contents(data):
    """(kind, arch) of every entry of the fat binaries in ``data`` (a linked library), kind
    "elf" (SASS) or "ptx", as `cuobjdump --list-elf --list-ptx` lists them."""
    found = []
    pos = data.find(FATBIN_MAGIC)
    while pos >= 0:
        # Header: magic, version 1, header size 16, size of the entries that follow. Entry:
        # kind (1 PTX, 2 ELF), header size, payload size, ..., architecture at byte 28.
        _, version, header, size = struct.unpack_from("<IHHQ", data, pos)
        if version == 1 and header == 16:
            entry, end = pos + header, pos + header + size
            while entry < end:
                kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, entry)
                (arch,) = struct.unpack_from("<I", data, entry + 28)
                found.append(({1: "ptx", 2: "elf"}.get(kind, str(kind)), arch))
                entry += entry_header + payload
        pos = data.find(FATBIN_MAGIC, pos + 4)
    return found


# ---- CUDA 11.8: NVRTC, sm_60 / sm_70 / sm_80 ---------------------------------------------

# NVRTC 11.8 ships no C library headers; the kernels include these for fixed-width integers
# and INT_MAX (size_t and the math functions are built into NVRTC). As on x86-64 Linux.
LIBC_SHIMS = {
    "stddef.h": "",
    "math.h": "",
    "stdint.h": "".join(
        "typedef %s %s;\n" % pair
        for pair in [
            ("signed char", "int8_t"),
            ("unsigned char", "uint8_t"),
            ("short", "int16_t"),
            ("unsigned short", "uint16_t"),
            ("int", "int32_t"),
            ("unsigned int", "uint32_t"),
            ("long", "int64_t"),
            ("unsigned long", "uint64_t"),
            ("long", "intptr_t"),
            ("unsigned long", "uintptr_t"),
        ]
    ),
    "limits.h": "#define INT_MAX 2147483647\n#define INT_MIN (-INT_MAX - 1)\n"
    "#define UINT_MAX 4294967295u\n",
}


@pytest.fixture(scope="module")
def nvrtc11(tmp_path_factory):
    """(libnvrtc 11.8, include flags): NVRTC, the CUDA 11.8 runtime headers, the libc shims."""
    root = pip_toolkit("cuda-11.8-nvrtc", CUDA11_WHEELS)
    try:
        lib = ctypes.CDLL(os.path.join(root, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so.11.2"))
    except OSError as err:
        pytest.skip("libnvrtc 11.8 does not load here: %s" % err)
    shims = tmp_path_factory.mktemp("libc_shims")
    for name, text in LIBC_SHIMS.items():
        (shims / name).write_text("#pragma once\n" + text)
    runtime = os.path.join(root, "nvidia", "cuda_runtime", "include")
    return lib, ["-I" + OPS, "-I" + str(shims), "-I" + runtime]


def nvrtc_cubin(lib, path, options):
    """Compiles the file at ``path`` with NVRTC; returns the CUBIN (asserts on errors)."""
    prog = ctypes.c_void_p()
    with open(path, "rb") as f:
        source = f.read()
    name = os.path.basename(path).encode()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source, name, 0, None, None) == 0
    try:
        opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
        status = lib.nvrtcCompileProgram(prog, len(options), opts)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        assert status == 0, "NVRTC 11.8 %s %s:\n%s" % (path, " ".join(options), log.value.decode())
        lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
        cubin = ctypes.create_string_buffer(size.value)
        assert lib.nvrtcGetCUBIN(prog, cubin) == 0
        return cubin.raw
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


@pytest.mark.parametrize("arch", ["60", "70", "80"])
def test_kernels_compile_with_cuda11_for(arch, nvrtc11):
    lib, includes = nvrtc11
    # build.py's nvcc flags (-std=c++17 --fmad=false; NVRTC optimises by default).
    # -default-device: NVRTC compiles device code only and refuses host functions, so the
    # launchers and host helpers are parsed as device functions (kernels are unaffected).
    options = ["--gpu-architecture=sm_" + arch, "-std=c++17", "--fmad=false", "-default-device"]
    for source in build.CUDA_SOURCES:
        path = os.path.join(OPS, source)
        cubin = nvrtc_cubin(lib, path, options + includes)
        # ELF for EM_CUDA (190), the SASS architecture in the low byte of e_flags.
        assert cubin[:4] == b"\x7fELF" and struct.unpack_from("<H", cubin, 18)[0] == 190
        assert struct.unpack_from("<I", cubin, 48)[0] & 0xFF == int(arch)
        with open(path) as f:
            kernels = re.findall(
                r"__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)", f.read()
            )
        assert kernels and all(k.encode() in cubin for k in kernels), (source, kernels)


# ---- CUDA 13 from pip: ops/build.py itself -----------------------------------------------


def test_build_py_with_pip_cuda13(tmp_path):
    root = pip_toolkit("cuda-13", CUDA13_WHEELS)
    env = dict(os.environ, SSD_WITH_CUDA="1", SSD_CUDA_ARCHS="75;90")
    env["CUDA_HOME"] = os.path.join(root, "nvidia", "cu13")
    out = str(tmp_path / "libssd_kernels.so")
    proc = subprocess.run(
        [sys.executable, os.path.join(OPS, "build.py"), "--kernels-only", "--out", out],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CUDA architectures: sm_75 sm_90 + PTX compute_90 (SSD_CUDA_ARCHS)" in proc.stdout
    with open(out, "rb") as f:
        contents = fatbin_contents(f.read())
    # One fat binary per CUDA source, each with SASS for both and PTX of the newest.
    expected = [("elf", 75), ("elf", 90), ("ptx", 90)]
    assert sorted(contents) == sorted(expected * len(build.CUDA_SOURCES)), contents
    # Linked with the static runtime: loads without libcudart (or a GPU) and has the launchers.
    library = ctypes.CDLL(out)
    assert library.ssd_prior_cuda and library.ssd_detection_cuda
