"""How long ``numvae exercise check`` takes on a class: 30 students' folders, graded with a CSV.

The class is generated in a temporary folder from the plain-NumPy solution of the tests
(tests/exercise_solution.py), one file per exercise, as ``numvae exercise start`` lays them
out, the capstone (12: 50 training steps of the slides' VAE) included; most students make one classic mistake, two leave exercises out, and three hand in a
file that loops, exits or patches NumPy. The grading runs as a teacher runs it, in a
process of its own, with the default time limit (10 s per function) and one job per core.

    python -m benchmarks.speed.grade_class [--students 30] [--out benchmarks/speed/results/grade_class.json]
"""
import argparse
import ast
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOLUTION = ROOT / "tests" / "exercise_solution.py"
sys.path.insert(0, str(ROOT))
from numvae.exercises import EXERCISES  # noqa: E402

# (exercise, old text, new text): one classic mistake each, in the solution's words
MISTAKES = [
    ("01_dense", "dW = x.T @ dy", "dW = dy.T @ x"),
    ("03_reparameterisation", "std = np.exp(0.5 * log_var)\n    return", "std = np.exp(log_var)\n    return"),
    ("04_kl", "dlog_var = 0.5 * (np.exp(log_var) - 1)\n", "dlog_var = 0.5 * np.exp(log_var)\n"),
    ("05_bernoulli", "return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))",
     "return np.log(1 + np.exp(a))"),
    ("07_loss_fn", "np.sum((prediction - target) ** 2)", "np.mean((prediction - target) ** 2)"),
    ("08_vae_backward", "dmean = dz + mean / batch", "dmean = dz"),
    ("09_adam", "m_hat = m / (1 - beta1**t)", "m_hat = m"),
    ("11_gaussian", "return (prediction - x) / sigma**2", "return (prediction - x) / sigma"),
]
ATTACKS = {  # student number -> (exercise, text put in front of the file)
    3: ("10_iwae", "while True:\n    pass\n"),
    7: ("02_encoder", "import os\nos._exit(0)\n"),
    11: ("04_kl", "import numpy as np\nnp.exp = lambda x: 0 * x\n"),
}


CAPSTONE_LOOP = """

def train_my_vae(x, params, order, eps, lr=1e-3):
    m = {name: np.zeros_like(value) for name, value in params.items()}
    v = {name: np.zeros_like(value) for name, value in params.items()}
    losses = []
    for t, (batch, step_eps) in enumerate(zip(order, eps), start=1):
        loss, grads = vae_loss_and_grad(x[batch], params, step_eps)
        for name in params:
            adam_step(params[name], grads[name], m[name], v[name], t, lr)
        losses.append(loss)
    return losses
"""


def split_solution():
    """{exercise name: source}: each exercise's functions with the helpers they call; the
    capstone (12) is the solution's 08 and 09 with a training loop."""
    source = SOLUTION.read_text(encoding="utf-8")
    tree = ast.parse(source)
    defs = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}

    def needed(names):
        todo, seen = list(names), []
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.append(name)
            todo += [n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name) and n.id in defs]
        return [name for name in defs if name in seen]  # the file's order
    def text(functions):
        return "import numpy as np\n\n\n" + "\n\n\n".join(
            ast.get_source_segment(source, defs[name]) for name in needed(functions)) + "\n"
    files = {exercise.name: text(exercise.functions) for exercise in EXERCISES
             if all(f in defs for f in exercise.functions)}
    files["12_train_my_vae"] = text(["vae_loss_and_grad", "adam_step"]) + CAPSTONE_LOOP
    return files


def make_class(folder, n_students):
    """Write the class into ``folder``: student_01 ... student_NN."""
    files = split_solution()
    for number in range(1, n_students + 1):
        student = folder / f"student_{number:02d}"
        student.mkdir(parents=True)
        mine = dict(files)
        if number % 4 != 0:  # three students in four make one classic mistake
            exercise, old, new = MISTAKES[number % len(MISTAKES)]
            assert mine[exercise].count(old) == 1, (exercise, old)
            mine[exercise] = mine[exercise].replace(old, new)
        if number in (5, 6):  # two did not get to the last exercises
            mine.pop("10_iwae"), mine.pop("11_gaussian")
        if number in ATTACKS:
            exercise, prefix = ATTACKS[number]
            mine[exercise] = prefix + mine[exercise]
        for name, text in mine.items():
            (student / f"{name}.py").write_text(text, encoding="utf-8")


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="numvae-class-") as tmp:
        klass = Path(tmp) / "class"
        make_class(klass, args.students)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        load_before = os.getloadavg()[0]
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "numvae", "exercise", "check", str(klass),
                               "--csv", str(Path(tmp) / "grades.csv")],
                              check=False, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the grader and its children
        cpu_seconds = (cpu_after.ru_utime - cpu_before.ru_utime
                       + cpu_after.ru_stime - cpu_before.ru_stime)
        rows = (Path(tmp) / "grades.csv").read_text(encoding="utf-8").count("\n") - 1
    result = {"students": args.students, "csv_rows": rows, "seconds": round(seconds, 1),
              "cpu_seconds": round(cpu_seconds, 1), "load_average_after": round(os.getloadavg()[0], 2),
              "exit_code": done.returncode, "jobs": os.cpu_count(), "cpu": cpu_name(),
              "load_average_before": round(load_before, 2), "last_line": done.stdout.splitlines()[-1]}
    print(json.dumps(result, indent=1))
    print("\n".join(done.stdout.splitlines()[-args.students - 3:]))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
