"""--deterministic --seed gives bit-identical runs: on a matrix of arch x image size x
augmentation, a run and a second one, interrupted mid-epoch and resumed, end with the same
weights fingerprint (the second trains its first steps apart from the first, so this
checks two runs and a resume at once). The matrix runs in one fresh process, as the CLI
does (a process whose TensorFlow already ran ops in parallel cannot promise it; the
warning test covers that).

The matrix runs each architecture once, between them both input sizes and both
augmentation settings: the seeds, the resume and the augmentation's replay differ by model.
The subprocess also reports TensorFlow's inter-op thread count: one op at a time is what
keeps the order of independent ops fixed (devices.run_ops_in_order). These tiny runs come
out identical even without it, so the count is what catches its loss."""

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import make_class_folder

pytestmark = pytest.mark.slow  # a subprocess trains 9 tiny models

MATRIX = [
    ("simplecnn", 28, "none"),
    ("convnet", 64, "auto"),
    ("resnet8", 28, "auto"),
]

SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    from imgcls_cli import api
    from imgcls_cli.engine.training import TrainingInterrupted
    from imgcls_cli.reporting import SilentReporter

    class StopAfterOneStep(SilentReporter):
        '''Ctrl-C as the epoch starts: the run stops after its first step, mid-epoch.'''
        def epoch_start(self, epoch, epochs, steps):
            os.kill(os.getpid(), signal.SIGINT)

    data, root, matrix = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    found = {}
    for arch, size, augment in matrix:
        options = dict(data=data, arch=arch, image_size=size, augment=augment, epochs=1,
                       batch_size=32, seed=7, deterministic=True, force=True)
        name = f"{arch}-{size}-{augment}"
        whole = api.train(output=f"{root}/{name}", **options)
        interrupted = f"{root}/{name}-resumed"
        try:
            api.train(output=interrupted, reporter=StopAfterOneStep(), **options)
            raise SystemExit(f"{name}: the run was not interrupted")
        except TrainingInterrupted:
            pass
        resumed = api.train(resume=interrupted)
        found[name] = [r.metrics["weights_fingerprint"] for r in (whole, resumed)]
    import tensorflow as tf
    print(json.dumps({"runs": found,
                      "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}))
    """
)


def test_deterministic_runs_are_bit_identical_across_the_matrix(tmp_path):
    # 20 classes and batches of 32: where ops in parallel changed the last bits before.
    classes = [f"c{i:02d}" for i in range(20)]
    data = make_class_folder(tmp_path / "data", classes=classes, per_class=5, size=40)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data), str(tmp_path / "runs"), json.dumps(MATRIX)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["inter_op_threads"] == 1
    found = report["runs"]
    assert len(found) == len(MATRIX)
    differing = {name: prints for name, prints in found.items() if len(set(prints)) != 1}
    assert differing == {}, differing


def test_a_process_that_already_ran_ops_in_parallel_says_so(tmp_path):
    """In a process whose TensorFlow started before (a notebook's second run), the order
    of ops cannot change any more: --deterministic says what it cannot promise."""
    code = textwrap.dedent(
        """
        import sys
        import tensorflow as tf
        tf.constant(1.0) + 1.0  # TensorFlow starts, ops in parallel
        from imgcls_cli import api
        class Warnings:
            def __getattr__(self, name):
                return lambda *args, **kwargs: None
            def warning(self, message):
                print("WARNING", message)
        api.train(output=sys.argv[1], deterministic=True, epochs=1, arch="simplecnn",
                  image_size=8, reporter=Warnings())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARNING --deterministic: TensorFlow already ran ops in this process" in result.stdout
