"""Checking an exported model in a fresh interpreter, the way a deployment would load it:
nothing of this process (imported packages, loaded libraries) leaks into the check."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def run_in_fresh_process(script, image, failure, **args):
    """Run ``script`` with ``python -c`` and one JSON argument: ``args`` plus 'input' (a
    .npy holding ``image``) and 'output' (the .npz the script writes with ``np.savez``).
    Returns the saved arrays in order; a failing script raises RuntimeError
    ``"<failure>: <its last stderr line>"``."""
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "in.npy"), image)
        out = os.path.join(tmp, "out.npz")
        args = dict(args, input=os.path.join(tmp, "in.npy"), output=out)
        proc = subprocess.run([sys.executable, "-c", script, json.dumps(args)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise RuntimeError("%s: %s" % (failure, last))
        saved = np.load(out)
        return [saved["arr_%d" % i] for i in range(len(saved.files))]
