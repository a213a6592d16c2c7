"""Our hand-written TensorBoard event files, read back by TensorBoard's own reader."""

from __future__ import annotations

import pytest

from robotrl.run.tbevents import EventWriter, crc32c


def test_crc32c_known_vectors():
    # RFC 3720 (iSCSI) test vectors
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(bytes([0xFF] * 32)) == 0x62A8AB43


def test_tensorboard_reads_our_scalars_and_a_resume_replaces_the_history(tmp_path):
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    w = EventWriter(tmp_path)
    for step in (100, 200, 300):
        w.add_scalars(step, {"rollout/ep_return_mean": step / 10, "train/loss": -1.5})
    w.close()
    acc = ea_mod.EventAccumulator(str(tmp_path))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["rollout/ep_return_mean", "train/loss"]
    ev = acc.Scalars("rollout/ep_return_mean")
    assert [e.step for e in ev] == [100, 200, 300]
    assert [e.value for e in ev] == pytest.approx([10.0, 20.0, 30.0])

    # a resumed run from the checkpoint at step 200: the stale step-300 point must go, the others stay once
    kept = [(step, {"rollout/ep_return_mean": step / 10, "train/loss": -1.5}) for step in (100, 200)]
    w = EventWriter(tmp_path, history=kept)  # what the logger passes for a checkpoint at 200
    w.add_scalars(300, {"rollout/ep_return_mean": 99.0})
    w.close()
    assert [p.name for p in tmp_path.iterdir()] == [w.path.name]  # the old file is gone, no temporary left
    acc = ea_mod.EventAccumulator(str(tmp_path))
    acc.Reload()
    ev = acc.Scalars("rollout/ep_return_mean")
    assert [(e.step, e.value) for e in ev] == [(100, 10.0), (200, 20.0), (300, 99.0)]
    assert [e.step for e in acc.Scalars("train/loss")] == [100, 200]
