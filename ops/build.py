"""Compiles the operator library.

``python ops/build.py`` (or the project's install, through setup.py's build_ext) writes
``ssd_gluon/_lib/libssd_ops.so``: the CPU operators with the host C++ compiler and, when a
CUDA toolkit is found (``nvcc`` on PATH or under ``$CUDA_HOME``; ``SSD_WITH_CUDA=0`` turns
it off), the CUDA kernels. ``--kernels-only`` builds ``libssd_kernels.so`` without any MXNet
code, for checking the kernels through their C entry points (tests/gpu).

CUDA architectures: ``SSD_CUDA_ARCHS`` (``"70;80"``) when set; else those of this machine's
GPUs (``nvidia-smi``); else FALLBACK_CUDA_ARCHS, as far as the found nvcc reaches. PTX of the
newest one built is embedded too, so cards newer than all of them run it (JIT-compiled).
"""

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_OUT = os.path.join(ROOT, "ssd_gluon", "_lib", "libssd_ops.so")
CPU_SOURCES = ["prior.cc", "target.cc", "detection.cc"]
# One object each, linked together; the shared device code is all inline in cuda_block.cuh
# and ssd_box.h, so no relocatable device code (-rdc) or device link step is needed.
CUDA_SOURCES = ["prior.cu", "target.cu", "detection.cu"]
# Built when no GPU says what it needs: Pascal (P100, sm_60) to Hopper (sm_90), as far as the
# found nvcc reaches (CUDA 11 toolkits, which mxnet-cu112 users have: all of them; nvcc 13:
# sm_75 on). SASS of X.Y also runs on X.Z cards with Z > Y (sm_80 SASS on an 8.6 card).
FALLBACK_CUDA_ARCHS = ["60", "70", "75", "80", "86", "89", "90"]


class BuildError(RuntimeError):
    pass


def mxnet_dir():
    """The installed mxnet package directory (holds include/mxnet/lib_api.h, src/lib_api.cc)."""
    spec = importlib.util.find_spec("mxnet")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("mxnet is not installed: the ops library compiles against its lib_api.h")
    path = list(spec.submodule_search_locations)[0]
    if not os.path.isfile(os.path.join(path, "src", "lib_api.cc")):
        raise BuildError("%s has no src/lib_api.cc (need an mxnet >= 1.9 wheel)" % path)
    return path


def find_nvcc():
    """Path of nvcc, or None. SSD_WITH_CUDA=0 disables, =1 requires it."""
    wanted = os.environ.get("SSD_WITH_CUDA", "auto")
    if wanted == "0":
        return None
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    nvcc = os.path.join(home, "bin", "nvcc") if home else shutil.which("nvcc")
    if nvcc and os.path.isfile(nvcc):
        return nvcc
    if wanted == "1":
        raise BuildError("SSD_WITH_CUDA=1 but nvcc was not found (set CUDA_HOME)")
    return None


def run(cmd):
    try:
        subprocess.run(cmd, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise BuildError("command failed (%s): %s" % (err, " ".join(cmd))) from None


def nvcc_release(nvcc):
    """The toolkit release of nvcc as text ("11.8"), or "unknown"."""
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    match = re.search(r"release (\d+\.\d+)", out)
    return match.group(1) if match else "unknown"


def nvcc_gpu_codes(nvcc):
    """The real architectures nvcc compiles for, oldest first: ["60", "61", ..., "90"]."""
    try:
        probe = subprocess.run([nvcc, "--list-gpu-code"], capture_output=True, text=True)
        codes = re.findall(r"^sm_(\d+)$", probe.stdout, re.M) if probe.returncode == 0 else []
    except OSError:
        codes = []
    if not codes:
        # --list-gpu-code came with CUDA 11.0, as did the C++17 that the kernels need, so an
        # nvcc without it cannot build them whatever the architectures.
        raise BuildError(
            "%s (CUDA %s) does not list its GPU architectures (nvcc --list-gpu-code): the "
            "kernels need CUDA >= 11.0" % (nvcc, nvcc_release(nvcc))
        )
    return sorted(set(codes), key=int)


def machine_gpu_capabilities():
    """Compute capabilities of this machine's GPUs as arch numbers ("86"), or [] when there is
    no nvidia-smi, no GPU, or a driver too old to answer the compute_cap query."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    caps = re.findall(r"^\s*(\d+)\.(\d)\s*$", out.stdout, re.M)
    return sorted({major + minor for major, minor in caps}, key=int)


def capability(arch):
    """An architecture number as a compute capability, as nvidia-smi writes it: "86" -> "8.6"."""
    return "%s.%s" % (arch[:-1], arch[-1])


def select_cuda_archs(supported, requested=None, gpus=(), release="unknown"):
    """The architectures to build SASS for, and why: (archs, reason).

    supported: what nvcc compiles for (nvcc_gpu_codes); requested: SSD_CUDA_ARCHS or None;
    gpus: this machine's capabilities (machine_gpu_capabilities)."""
    toolkit = "CUDA %s (sm_%s to sm_%s)" % (release, supported[0], supported[-1])
    if requested is not None:
        archs = [a.strip() for a in requested.split(";") if a.strip()]
        bad = [a for a in archs if not a.isdigit()]
        if not archs or bad:
            raise BuildError("SSD_CUDA_ARCHS=%r: expected numbers like 70;80" % requested)
        missing = [a for a in archs if a not in supported]
        if missing:
            raise BuildError(
                "SSD_CUDA_ARCHS asks for sm_%s, which %s cannot compile for"
                % (", sm_".join(missing), toolkit)
            )
        return sorted(set(archs), key=int), "SSD_CUDA_ARCHS"
    if gpus:
        newest = supported[-1]
        # A card newer than every architecture nvcc knows runs the newest one's PTX; one that
        # nvcc has no SASS for otherwise (older than its range) would fail at the first launch.
        unbuildable = [g for g in gpus if g not in supported and int(g) < int(newest)]
        if unbuildable:
            raise BuildError(
                "this machine's GPU needs sm_%s (compute capability %s), which %s cannot "
                "compile for: use a CUDA toolkit that can (CUDA 11 and 12 compile for sm_60 and "
                "sm_70, nvcc 13 starts at sm_75) or set SSD_CUDA_ARCHS"
                % (", sm_".join(unbuildable), ", ".join(map(capability, unbuildable)), toolkit)
            )
        archs = sorted({g if g in supported else newest for g in gpus}, key=int)
        caps = ", ".join(map(capability, gpus))
        return archs, "this machine's GPUs: compute capability %s" % caps
    archs = [a for a in FALLBACK_CUDA_ARCHS if a in supported]
    if not archs:
        raise BuildError(
            "%s builds none of sm_%s: set SSD_CUDA_ARCHS"
            % (toolkit, ", sm_".join(FALLBACK_CUDA_ARCHS))
        )
    return archs, "no GPU found: the default list, as far as %s reaches" % toolkit


def cuda_archs(nvcc):
    """(archs, reason) for this nvcc and machine; see select_cuda_archs."""
    requested = os.environ.get("SSD_CUDA_ARCHS") or None
    return select_cuda_archs(
        nvcc_gpu_codes(nvcc),
        requested=requested,
        # The user's list wins, so do not ask the driver then.
        gpus=() if requested else machine_gpu_capabilities(),
        release=nvcc_release(nvcc),
    )


def gencode_flags(archs):
    """SASS for each architecture plus PTX of the newest, which the driver JIT-compiles for
    cards newer than all of them (SASS runs only on cards of its own major version)."""
    newest = max(archs, key=int)
    flags = ["-gencode=arch=compute_%s,code=sm_%s" % (a, a) for a in archs]
    return flags + ["-gencode=arch=compute_%s,code=compute_%s" % (newest, newest)]


def compile_cuda(nvcc, archs, workdir):
    """CUDA_SOURCES -> position-independent objects; returns (objects, link flags)."""
    objs = []
    for source in CUDA_SOURCES:
        obj = os.path.join(workdir, os.path.splitext(source)[0] + "_cuda.o")
        # --fmad=false: no fused multiply-adds, so IoUs and boxes round as on the CPU and
        # near-ties resolve the same way on both.
        run(
            [
                nvcc,
                "-O3",
                "-std=c++17",
                "--fmad=false",
                "-Xcompiler",
                "-fPIC",
                "-I",
                HERE,
                *gencode_flags(archs),
                "-c",
                os.path.join(HERE, source),
                "-o",
                obj,
            ]
        )
        objs.append(obj)
    # The static runtime: the library must not depend on which libcudart MXNet ships.
    return objs, ["-L" + cuda_lib_dir(nvcc), "-lcudart_static", "-ldl", "-lrt", "-lpthread"]


def cuda_lib_dir(nvcc):
    """The toolkit's directory holding libcudart_static.a, among the library directories nvcc
    itself reports (nvcc may be a wrapper script, and its nvcc.profile places them: lib64/ in
    a classic install, lib/ in the pip wheels' site-packages/nvidia/cu13)."""
    probe = subprocess.run([nvcc, "--dryrun", "-c", "x.cu"], capture_output=True, text=True)
    dirs = []
    for line in (probe.stdout + probe.stderr).splitlines():
        if "LIBRARIES=" in line:
            flags = [d.strip('"') for d in line.split("LIBRARIES=", 1)[1].split()]
            dirs += [d[2:] for d in flags if d.startswith("-L")]
    for d in dirs:
        if os.path.isfile(os.path.join(d, "libcudart_static.a")):
            return d
    raise BuildError(
        "no libcudart_static.a in the library directories of `%s --dryrun` (%s): the kernels "
        "link the static CUDA runtime" % (nvcc, " ".join(dirs) or "none")
    )


def build(out=DEFAULT_OUT, kernels_only=False, verbose=True):
    """Compile and link; returns (path, with_cuda). Written to a temporary name, then renamed."""
    cxx = os.environ.get("CXX", "c++")
    nvcc = find_nvcc()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        flags = ["-O3", "-std=c++17", "-fPIC", "-shared", "-fopenmp", "-I", HERE]
        sources = [os.path.join(HERE, s) for s in CPU_SOURCES]
        link = []
        if not kernels_only:
            mx = mxnet_dir()
            flags += ["-I", os.path.join(mx, "include")]
            sources += [os.path.join(HERE, "register.cc"), os.path.join(mx, "src", "lib_api.cc")]
        if nvcc:
            archs, reason = cuda_archs(nvcc)
            if verbose:
                print(
                    "CUDA architectures: %s + PTX compute_%s (%s)"
                    % (" ".join("sm_" + a for a in archs), archs[-1], reason)
                )
            objs, link = compile_cuda(nvcc, archs, work)
            flags.append("-DSSD_WITH_CUDA")
            link = objs + link
        tmp = os.path.join(os.path.dirname(os.path.abspath(out)), ".tmp-" + os.path.basename(out))
        # --no-undefined: a missing symbol must fail here, not kill the interpreter at load.
        # -Bsymbolic: libmxnet.so exports its own (differently built) copy of lib_api's
        # classes; once horovod.mxnet has put it in the global symbol scope, our lib_api.cc
        # calls would bind to it and crash at load (SIGFPE). Bind them to our own copy.
        run([cxx, *flags, *sources, *link, "-Wl,--no-undefined", "-Wl,-Bsymbolic", "-o", tmp])
        os.replace(tmp, out)
    if verbose:
        print("built %s (%s)" % (out, "CPU + CUDA" if nvcc else "CPU only"))
    return out, bool(nvcc)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="output path (default: %s)" % DEFAULT_OUT)
    parser.add_argument(
        "--kernels-only", action="store_true", help="C entry points only, no MXNet registration"
    )
    args = parser.parse_args(argv)
    out = args.out or (
        os.path.join(HERE, "build", "libssd_kernels.so") if args.kernels_only else DEFAULT_OUT
    )
    try:
        build(out, kernels_only=args.kernels_only)
    except BuildError as err:
        sys.exit("error: %s" % err)


if __name__ == "__main__":
    main()
