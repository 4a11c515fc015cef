"""Compiles the operator library.

``python ops/build.py`` (or the project's install, through setup.py's build_ext) writes
``ssd_gluon/_lib/libssd_ops.so``: the CPU operators with the host C++ compiler and, when a
CUDA toolkit is found (``nvcc`` on PATH or under ``$CUDA_HOME``; ``SSD_WITH_CUDA=0`` turns
it off), the CUDA kernels. ``--kernels-only`` builds ``libssd_kernels.so`` without any MXNet
code, for checking the kernels through their C entry points (tests/gpu).
"""

import argparse
import importlib.util
import os
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
# nvcc 13 compiles for Turing (sm_75) and newer; users of older toolkits can override.
DEFAULT_CUDA_ARCHS = "75;80;86;89;90"


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


def compile_cuda(nvcc, workdir):
    """CUDA_SOURCES -> position-independent objects; returns (objects, link flags)."""
    archs = os.environ.get("SSD_CUDA_ARCHS", DEFAULT_CUDA_ARCHS).split(";")
    gencode = ["-gencode=arch=compute_%s,code=sm_%s" % (a, a) for a in archs if a]
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
                *gencode,
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
    """The toolkit's library directory, as nvcc itself reports it (nvcc may be a wrapper)."""
    probe = subprocess.run([nvcc, "--dryrun", "-c", "x.cu"], capture_output=True, text=True)
    for line in (probe.stdout + probe.stderr).splitlines():
        if "LIBRARIES=" in line:
            dirs = [d.strip('"') for d in line.split("LIBRARIES=", 1)[1].split()]
            dirs = [
                d[2:] for d in dirs if d.startswith("-L") and not d.rstrip("/").endswith("stubs")
            ]
            if dirs:
                return dirs[-1]
    raise BuildError("could not find the CUDA library directory from `%s --dryrun`" % nvcc)


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
            objs, link = compile_cuda(nvcc, work)
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
