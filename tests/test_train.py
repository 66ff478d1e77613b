"""Tests of the one training loop: its configuration, and a task of its own driven by it."""

from __future__ import annotations

import pytest

from workbench.train import EventRecorder, TrainConfig, run_training


def test_train_config_is_validated_with_value_errors_and_round_trips():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(learning_rate=0.0)
    with pytest.raises(ValueError, match="unknown TrainConfig"):
        TrainConfig.from_dict({"epochs": 3})
    cfg = TrainConfig(max_epochs=7, grad_clip=None)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


class _Countdown:
    """A task whose validation loss falls for three epochs, then stalls."""

    def __init__(self) -> None:
        self.steps, self.restored = 0, None

    def begin_epoch(self, epoch):
        pass

    def train_batch(self, epoch, batch):
        self.steps += 1
        return 2.0 * epoch, 2.0

    def evaluate(self, epoch):
        return max(4 - epoch, 1)

    def record(self, epoch, train_loss, val_loss, seconds):
        return {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}

    def should_stop(self, epoch, val_loss):
        return epoch >= 5

    def finish(self, stopped, epoch):
        self.restored = stopped
        return 3, 1.0


def test_run_training_drives_any_task_and_reports_every_step():
    task, rec = _Countdown(), EventRecorder()
    result = run_training(task, max_epochs=10, n_batches=2, callbacks=[rec], phase="demo")
    assert task.steps == 10 and result.stopped == "early_stopping" == task.restored
    assert [r["train_loss"] for r in result.history] == [1.0, 2.0, 3.0, 4.0, 5.0]
    kinds = [e.kind for e in rec.events]
    assert kinds[:3] == ["train_begin", "batch_end", "batch_end"] and kinds[-1] == "train_end"
    ends = [e for e in rec.events if e.kind == "epoch_end"]
    assert [e.record for e in ends] == list(result.history) and ends[0].phase == "demo"
    assert (result.best_epoch, result.best_val_loss) == (3, 1.0)


def test_an_interrupt_from_a_callback_ends_training_with_the_tasks_best_weights():
    def stop(event):
        if event.kind == "batch_end" and event.epoch == 2:
            raise KeyboardInterrupt

    task = _Countdown()
    result = run_training(task, max_epochs=10, n_batches=2, callbacks=[stop])
    assert result.stopped == "interrupted" == task.restored and len(result.history) == 1
