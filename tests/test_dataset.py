"""Zoo dataset: whole-task splits and on-device batches."""

import jax
import jax.numpy as jnp
import numpy as np

from weightspace import dataset, lstm, zoo
from weightspace.tasks import formal_languages as fl
from weightspace.tasks import sequential_mnist as sm

SPEC = lstm.LSTMSpec(6, 4, 1, 6)


def _formal_language_zoo(path, snapshots_per_task=2):
    tasks = np.repeat(fl.ALL_TASKS, snapshots_per_task, axis=0)
    num = len(tasks)
    params = jax.tree.map(
        np.asarray, jax.vmap(lstm.init, in_axes=(0, None))(jax.random.split(jax.random.key(0), num), SPEC)
    )
    rng = np.random.default_rng(0)
    behaviour = {
        "sequences": rng.integers(0, 6, (num, 3, 42)).astype(np.int16),
        "log_probs": np.log(rng.dirichlet(np.ones(6), (num, 3, 41))).astype(np.float16),
    }
    metadata = {"run": np.arange(num) // 2, "step": np.arange(num) % 2, "task": tasks, "correct": rng.random(num)}
    zoo.save(path, params, behaviour, metadata, SPEC, {"family": "formal_languages"})
    return zoo.load(path)


def test_formal_language_split_keeps_tasks_whole(tmp_path):
    z = _formal_language_zoo(tmp_path / "zoo")
    split = dataset.task_split(z, fl.FormalLanguages(), seed=0)
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(len(z)))
    task_sets = {name: {tuple(t) for t in z.metadata["task"][idx]} for name, idx in split.items()}
    assert [len(task_sets[n]) for n in dataset.SPLITS] == [152, 32, 32]
    assert not (task_sets["train"] & task_sets["eval"] or task_sets["train"] & task_sets["ood"])
    entropy = lambda ts: fl.task_entropy(np.array(sorted(ts)))
    assert entropy(task_sets["ood"]).min() >= max(entropy(task_sets["train"]).max(), entropy(task_sets["eval"]).max())
    other = dataset.task_split(z, fl.FormalLanguages(), seed=1)
    np.testing.assert_array_equal(split["ood"], other["ood"])
    assert not np.array_equal(split["eval"], other["eval"])
    record = dataset.describe_split(z, fl.FormalLanguages(), split)
    assert record["ood"]["num_tasks"] == 32 and record["ood"]["num_snapshots"] == 64


def test_mnist_split_by_angle(tmp_path):
    angles = np.random.default_rng(0).uniform(0, 360, 40).astype(np.float32)
    metadata = {"angle": np.repeat(angles, 3)}
    z = zoo.Zoo(params={}, behaviour={}, metadata={"run": np.arange(120), **metadata}, spec=SPEC, info={})
    split = dataset.task_split(z, sm.SequentialMnist(), seed=0)
    assert [len(split[n]) for n in dataset.SPLITS] == [28 * 3, 6 * 3, 6 * 3]
    assert z.metadata["angle"][split["ood"]].min() > z.metadata["angle"][split["train"]].max()


def test_batches_gather_the_right_rows(tmp_path):
    z = _formal_language_zoo(tmp_path / "zoo")
    family = fl.FormalLanguages()
    arrays = dataset.zoo_arrays(z)
    indices, key = jnp.arange(10, 20), jax.random.key(0)
    batch = jax.jit(dataset.sample_batch, static_argnums=(2, 4))(key, arrays, family, indices, 16)
    assert batch["inputs"].shape == (16, 41, 6) and batch["targets"].shape == (16, 41, 6)
    assert batch["tokens"].shape == (16, 41) and batch["params"]["weight_hh_l0"].shape == (16, 16, 4)
    snaps, seqs = map(np.asarray, dataset.sample_indices(key, indices, 16, 3))
    assert snaps.min() >= 10 and snaps.max() < 20 and len(np.unique(seqs)) > 1
    for b in range(16):
        np.testing.assert_array_equal(batch["params"]["weight_hh_l0"][b], z.params["weight_hh_l0"][snaps[b]])
        np.testing.assert_array_equal(batch["tokens"][b], z.sequences[snaps[b], seqs[b], 1:])
        np.testing.assert_allclose(batch["targets"][b], z.log_probs[snaps[b], seqs[b]].astype(np.float32))
        np.testing.assert_array_equal(np.argmax(batch["inputs"][b], -1), z.sequences[snaps[b], seqs[b], :-1])
    # The same batch read on the host from the zoo's files (a zoo kept on disk).
    on_disk = dataset.zoo_arrays(zoo.load(tmp_path / "zoo", on_disk=True))
    read = dataset.assemble(dataset.read(on_disk, snaps, seqs), family)
    jax.tree.map(np.testing.assert_array_equal, read, batch)


def test_fixed_batches_cover_a_split_once():
    batches = dataset.fixed_batches(np.arange(100, 125), 10, num_sequences=3)
    assert len(batches) == 3
    covered = np.concatenate([s[m] for s, _, m in batches])
    np.testing.assert_array_equal(covered, np.arange(100, 125))
    assert all(len(s) == 10 and seq.max() < 3 for s, seq, _ in batches)
    (short,) = dataset.fixed_batches(np.arange(3), 8, num_sequences=2)
    np.testing.assert_array_equal(short[0], [0, 1, 2, 0, 1, 2, 0, 1])
    assert short[2].sum() == 3
