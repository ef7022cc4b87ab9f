import numpy as np

from aser_jax.data.pipeline import PipelineConfig, TrainIterator, steps_per_epoch
from aser_jax.data.sequences import SequenceData, read_sequences
from aser_jax.data.splits import eval_split, left_pad, train_item_counts, train_samples
from aser_jax.data.synthetic import synthetic_dataset


def _data(*seqs, num_items=20):
  return SequenceData(np.arange(1, len(seqs) + 1), tuple(np.asarray(s, np.int32) for s in seqs), num_items)


def test_left_pad():
  assert left_pad(np.array([1, 2, 3]), 5).tolist() == [0, 0, 1, 2, 3]
  assert left_pad(np.array([1, 2, 3, 4, 5, 6]), 4).tolist() == [3, 4, 5, 6]


def test_prefix_samples_by_hand():
  data = _data([1, 2, 3, 4, 5, 6, 7])  # train part 1..5, valid 6, test 7
  s = train_samples(data, max_len=3)  # w = s[-5:-2] = [3, 4, 5]
  assert s.inputs.tolist() == [[0, 0, 3], [0, 3, 4]]
  assert s.targets.tolist() == [4, 5]
  s = train_samples(data, max_len=10)  # w = [1..5]
  assert s.targets.tolist() == [2, 3, 4, 5]
  assert s.inputs[-1].tolist() == [0] * 6 + [1, 2, 3, 4]
  s = train_samples(data, max_len=3, empty_inputs=True)  # the reference's sample set
  assert s.inputs.tolist() == [[0, 0, 0], [0, 0, 3], [0, 3, 4]]
  assert s.targets.tolist() == [3, 4, 5]


def test_eval_splits_by_hand():
  data = _data([1, 2, 3, 4, 5], [6, 7, 8])
  v, t = eval_split(data, 3, "valid"), eval_split(data, 3, "test")
  assert v.inputs.tolist() == [[1, 2, 3], [0, 0, 6]] and v.targets.tolist() == [4, 7]
  assert t.inputs.tolist() == [[2, 3, 4], [0, 6, 7]] and t.targets.tolist() == [5, 8]
  assert t.history.tolist() == [[1, 2, 3, 4], [6, 7, 0, 0]]  # whole history, not only the last L


def test_no_leakage_of_valid_or_test_into_training():
  data, _ = synthetic_dataset(num_users=200, num_items=5000, seed=1)
  # re-label every interaction with a unique id so positions can be traced through the split
  uniq, nxt = [], 1
  for s in data.sequences:
    uniq.append(np.arange(nxt, nxt + len(s), dtype=np.int32))
    nxt += len(s)
  data = _data(*uniq, num_items=nxt)
  s = train_samples(data, 50)
  seen = set(s.inputs[s.inputs > 0].tolist()) | set(s.targets.tolist())
  held_out = {int(q[-1]) for q in data.sequences} | {int(q[-2]) for q in data.sequences}
  assert not seen & held_out
  v = eval_split(data, 50, "valid")
  assert not set(v.inputs[v.inputs > 0].tolist()) & {int(q[-1]) for q in data.sequences}
  assert not set(v.history[v.history > 0].tolist()) & set(v.targets.tolist())


def test_train_item_counts_use_training_part_only():
  counts = train_item_counts(_data([1, 1, 2, 3, 4], [2, 5, 6], num_items=6))
  assert counts.tolist() == [0, 2, 2, 0, 0, 0, 0]


def test_real_beauty_sample_count(shared_data):
  data = read_sequences(shared_data / "amazon2014/beauty/Beauty.txt.gz")
  # BACKBONES.md: the reference has 150,258 samples including one empty-input sample per user.
  assert len(train_samples(data, 50)) == 150258 - data.num_users
  assert len(train_samples(data, 50, empty_inputs=True)) == 150258


def _samples():
  data = _data(*[list(range(1, 14))] * 3, num_items=20)  # 3 users x 10 samples
  return train_samples(data, 12)


def test_batches_are_fixed_size_with_zero_weight_padding():
  s = _samples()
  it = TrainIterator(s, PipelineConfig(batch_size=4, seed=0))
  batches = list(it)
  assert len(batches) == steps_per_epoch(s, PipelineConfig(batch_size=4)) == -(-len(s) // 4)
  assert all(b["input_ids"].shape == (4, 12) for b in batches)
  assert sum(b["weight"].sum() for b in batches) == len(s)
  assert batches[-1]["weight"].tolist() == [1.0, 1.0, 0.0, 0.0]  # 30 samples = 7 x 4 + 2
  # each row names its user (GRASP's user tables): the user whose sequence gave that sample
  pairs = {(tuple(i), t, u) for b in batches for i, t, u, w in zip(b["input_ids"], b["target"], b["user"], b["weight"])
           if w > 0}
  assert pairs == {(tuple(i), t, u) for i, t, u in zip(s.inputs, s.targets, s.users)}


def test_epoch_order_is_seeded_and_differs_between_epochs():
  s = _samples()
  def order(seed, epoch):
    it = TrainIterator(s, PipelineConfig(batch_size=4, seed=seed))
    it.start_epoch(epoch)
    return np.concatenate([b["target"][b["weight"] > 0] for b in it]).tolist()
  assert order(0, 0) == order(0, 0)
  assert order(0, 0) != order(0, 1)
  assert order(0, 0) != order(1, 0)
  assert sorted(order(0, 1)) == sorted(s.targets.tolist())


def test_iterator_state_restores_mid_epoch():
  s = _samples()
  cfg = PipelineConfig(batch_size=4, seed=5)
  it = TrainIterator(s, cfg)
  it.start_epoch(2)
  stream = iter(it)
  next(stream), next(stream)
  state = it.get_state()
  rest = [b["input_ids"] for b in stream]
  again = TrainIterator(s, cfg)
  again.set_state(state)
  assert again.epoch == 2
  assert all(np.array_equal(a, b["input_ids"]) for a, b in zip(rest, again, strict=True))


def test_worker_processes_give_the_same_batches():
  s = _samples()
  inproc = [b["target"] for b in TrainIterator(s, PipelineConfig(batch_size=4, seed=2))]
  workers = [b["target"] for b in TrainIterator(s, PipelineConfig(batch_size=4, seed=2, workers=2))]
  assert len(inproc) == len(workers)
  assert all(np.array_equal(a, b) for a, b in zip(inproc, workers))
