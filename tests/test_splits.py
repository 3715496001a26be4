import numpy as np

from imgcls_cli.data.splits import stratified_carve, stream_carve


def test_stratified_carve_is_seeded_disjoint_and_complete():
    labels = np.repeat(np.arange(3), 20)
    kept, carved = stratified_carve(labels, 0.25, seed=1)
    assert set(kept).isdisjoint(carved) and len(kept) + len(carved) == 60
    assert np.bincount(labels[carved]).tolist() == [5, 5, 5]
    again = stratified_carve(labels, 0.25, seed=1)
    assert carved.tolist() == again[1].tolist()
    other = stratified_carve(labels, 0.25, seed=2)
    assert carved.tolist() != other[1].tolist()


def test_stratified_carve_never_empties_a_class():
    labels = np.array([0, 1, 1, 1])
    kept, _ = stratified_carve(labels, 0.9, seed=0)
    assert set(labels[kept]) == {0, 1}


def test_stream_carve_parts_partition_the_stream():
    import tensorflow as tf

    dataset = tf.data.Dataset.range(1000).map(lambda i: (i, i % 10))

    def part(name, seed):
        carved = stream_carve(dataset, name, seed, test_fraction=0.1, val_fraction=0.2)
        return {int(x) for x, _ in carved.as_numpy_iterator()}

    train, val, test = part("train", 5), part("val", 5), part("test", 5)
    assert train | val | test == set(range(1000))
    assert not (train & val or train & test or val & test)
    assert 60 <= len(test) <= 140 and 130 <= len(val) <= 230
    # The test part does not depend on --seed; the validation part does.
    assert part("test", 6) == test and part("val", 6) != val
