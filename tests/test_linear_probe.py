"""``protocol: linear``: the probe's choice of C and its agreement with scikit-learn, and the run
end to end (records, cache reuse, detection refused)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import bench, read_json, run_dirs
from reference_metrics import classification_reference, load_npz
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmark.feature_cache import LOCKS_DIR
from benchmark.protocols.linear_probe import accuracy, c_grid, fit_probe


def _blobs(n: int, d: int, classes: int, seed: int, noise: float = 2.5):
    """Gaussian classes with overlap, so regularisation matters and val scores differ by C."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((classes, d))
    y = rng.integers(0, classes, n)
    x = centres[y] + noise * rng.standard_normal((n, d))
    return (x * rng.uniform(0.1, 10, d)).astype(np.float32), y  # unequal scales: standardise


def test_default_grid_is_kornbliths() -> None:
    grid = c_grid()
    assert len(grid) == 45 and grid[0] == pytest.approx(1e-6) and grid[-1] == pytest.approx(1e5)
    assert np.allclose(np.diff(np.log10(grid)), 11 / 44)


def test_chosen_c_has_the_best_validation_score() -> None:
    train, val, test = _blobs(120, 30, 4, 0), _blobs(80, 30, 4, 1), _blobs(50, 30, 4, 2)
    grid = c_grid(1e-4, 1e3, 12)
    result = fit_probe(train, val, test[0], num_outputs=4, multilabel=False, score=accuracy,
                       grid=grid)  # fmt: skip
    scores = np.asarray(result.val_scores)
    assert len(set(scores)) > 2  # the grid matters on this problem: the test can fail
    assert result.chosen_c == result.grid[int(np.argmax(scores))]
    assert scores[result.grid.index(result.chosen_c)] == scores.max()
    # each point of the curve is what a cold scikit-learn fit at that C scores on val
    scaler = StandardScaler().fit(train[0])
    for c, score in zip(result.grid, result.val_scores, strict=True):
        cold = LogisticRegression(C=c, max_iter=1000).fit(scaler.transform(train[0]), train[1])
        expected = np.mean(cold.predict(scaler.transform(val[0])) == val[1])
        # warm start reaches the same optimum up to the solver's tolerance: a few val examples
        # near the boundary may flip where weak regularisation leaves the optimum flat
        assert abs(score - expected) <= 3 / len(val[1]) + 1e-9, c


def test_probe_test_accuracy_equals_scikit_learn_with_the_same_c() -> None:
    train, val, test = _blobs(150, 20, 3, 3), _blobs(60, 20, 3, 4), _blobs(90, 20, 3, 5)
    result = fit_probe(train, val, test[0], num_outputs=3, multilabel=False, score=accuracy,
                       grid=c_grid(1e-3, 1e2, 11))  # fmt: skip
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=result.chosen_c,
                                                                   max_iter=1000))  # fmt: skip
    reference.fit(np.concatenate([train[0], val[0]]), np.concatenate([train[1], val[1]]))
    ours = accuracy(result.test_logits, test[1])
    theirs = float(np.mean(reference.predict(test[0]) == test[1]))
    assert ours == theirs
    assert np.array_equal(result.test_logits.argmax(1), reference.predict(test[0]))
    assert result.test_logits.shape == (90, 3) and result.test_logits.dtype == np.float32


def test_multilabel_is_one_binary_problem_per_label() -> None:
    x, y3 = _blobs(200, 10, 3, 6, noise=1.0)
    y = np.stack([y3 == 0, y3 == 1, np.ones_like(y3)], axis=1).astype(np.int64)  # label 2: always
    train, val, test = (x[:100], y[:100]), (x[100:150], y[100:150]), (x[150:], y[150:])
    result = fit_probe(train, val, test[0], num_outputs=3, multilabel=True, score=accuracy,
                       grid=c_grid(1e-3, 1e2, 6))  # fmt: skip
    assert result.test_logits.shape == (50, 3)
    assert (result.test_logits[:, 2] > 0).all()  # a constant label predicts its only value
    x_all, y_all = np.concatenate([train[0], val[0]]), np.concatenate([train[1], val[1]])
    for j in (0, 1):  # each label: scikit-learn's binary fit at the shared chosen C
        reference = make_pipeline(StandardScaler(), LogisticRegression(C=result.chosen_c,
                                                                       max_iter=1000))  # fmt: skip
        reference.fit(x_all, y_all[:, j])
        assert np.array_equal(result.test_logits[:, j] > 0, reference.predict(test[0]) == 1)


# --- end to end ----------------------------------------------------------------------------------

RUN = ("run", "--protocol", "linear", "--subset", "tiny", "--accelerator", "cpu",
       "--num-workers", "0")  # fmt: skip


@pytest.fixture
def feature_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "features"


def test_cifar10_probe_run_records_c_curve_and_reuses_the_cache(
    tmp_path, feature_cache, cifar_root, paper_resnet18, capsys
) -> None:
    args = (*RUN, "--task", "cifar10", "--backbone", paper_resnet18, "--data-root", cifar_root,
            "--results", tmp_path / "r")  # fmt: skip
    assert bench(*args, "--set", "probe.c_count=5") == 0
    assert capsys.readouterr().out.count("extracting features") == 3
    (run_dir,) = run_dirs(tmp_path / "r")
    assert "/cifar10/linear/" in str(run_dir)
    record = read_json(run_dir / "record.json")
    assert record["status"] == "completed" and record["protocol"] == "linear"
    probe = record["probe"]
    curve = probe["val_curve"]
    assert len(curve) == 5 and probe["val_metric"] == "top1"
    best = max(point["val_score"] for point in curve)
    assert probe["chosen_C"] == next(p["C"] for p in curve if p["val_score"] == best)
    assert all(not probe["features"][s]["hit"] for s in ("train", "val", "test"))
    assert probe["features"]["train"]["shape"] == [40, 512]  # ResNet-18: the input of fc
    # the record's metrics are scikit-learn's on the saved predictions, exactly
    assert record["metrics"] == classification_reference(run_dir, record["class_names"])
    assert load_npz(run_dir)["logits"].shape == (20, 10)
    assert record["config"]["task"]["probe"]["c_count"] == 5

    # another grid: a new run, the features read back from the cache
    assert bench(*args, "--set", "probe.c_count=3") == 0
    assert "extracting features" not in capsys.readouterr().out
    second = read_json(next(d for d in run_dirs(tmp_path / "r") if d != run_dir) / "record.json")
    assert all(second["probe"]["features"][s]["hit"] for s in ("train", "val", "test"))
    assert {s: second["probe"]["features"][s]["key"] for s in ("train", "val", "test")} == {
        s: probe["features"][s]["key"] for s in ("train", "val", "test")}
    assert len([p for p in feature_cache.iterdir() if p.name != LOCKS_DIR]) == 3
    # the leaderboard shows the probe as its own setting, by name
    assert bench("leaderboard", "--results", tmp_path / "r", "--no-plots") == 0
    board = (tmp_path / "r" / "leaderboard" / "leaderboard.md").read_text()
    assert "CIFAR-10 · linear probe (L-BFGS) · tiny" in board


def test_celeba_probe_is_one_problem_per_attribute(
    tmp_path, feature_cache, paper_resnet18
) -> None:
    root = tmp_path / "data"
    assert bench("data", "fixture", "--task", "celeba", "--root", root) == 0
    assert bench(*RUN, "--task", "celeba", "--backbone", paper_resnet18, "--data-root", root,
                 "--results", tmp_path / "r", "--set", "probe.c_count=2") == 0  # fmt: skip
    (run_dir,) = run_dirs(tmp_path / "r")
    record = read_json(run_dir / "record.json")
    saved = load_npz(run_dir)
    assert saved["logits"].shape == saved["target"].shape == (8, 40)
    correct = ((saved["logits"] > 0) == saved["target"]).mean(axis=0)
    assert record["metrics"]["mean_attribute_accuracy"] == pytest.approx(correct.mean())
    assert "one binary problem per label" in record["probe"]["method"]
    assert len(record["probe"]["val_curve"]) == 2


def test_protocol_flag_and_set_must_agree(tmp_path, cifar_root, paper_resnet18, capsys) -> None:
    code = bench(*RUN, "--task", "cifar10", "--backbone", paper_resnet18, "--data-root",
                 cifar_root, "--results", tmp_path, "--set", "protocol=finetune")  # fmt: skip
    assert code == 2 and "disagree" in capsys.readouterr().err


def test_detection_has_no_linear_protocol(tmp_path, paper_resnet18, capsys) -> None:
    """Refused in one line before any data is read (the data root does not even exist)."""
    for protocol in ("linear", "linear_sgd"):
        code = bench("run", "--task", "voc", "--protocol", protocol, "--backbone",
                     paper_resnet18, "--data-root", tmp_path / "none",
                     "--results", tmp_path)  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err and "detection has no linear protocol" in err
    assert not (tmp_path / "runs").exists()
