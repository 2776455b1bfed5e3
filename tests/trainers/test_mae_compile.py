"""MAETask(compile=True) compiles its MAE in place (timm/torch ``Module.compile``)."""

import pytest
import torch

from geomae.trainers import MAETask

STATS = {b: {"mean": 0.0, "std": 1.0} for b in ("B02", "B03", "B04", "B08")}
ARCH = {
    "groups": "single",
    "patch_size": 4,
    "embed_dim": 16,
    "depth": 1,
    "num_heads": 2,
    "decoder_embed_dim": 8,
    "decoder_depth": 1,
    "decoder_num_heads": 2,
    "masking": "independent",
}


def _task(compile_: bool) -> MAETask:
    torch.manual_seed(0)
    return MAETask(bands="rgbn", stats=STATS, img_size=16, compile=compile_, **ARCH)


@pytest.mark.slow
def test_compiled_task_keeps_state_dict_keys_and_loss():
    eager, compiled = _task(False), _task(True)
    # compiled in place: no ``_orig_mod`` wrapper, the same keys and values
    assert list(compiled.state_dict()) == list(eager.state_dict())
    compiled.load_state_dict(eager.state_dict())
    assert eager.model is not None and compiled.model is not None
    image = torch.randn(2, 4, 16, 16)  # (B, C, H, W)
    # the same masks for both: drawn from an explicit generator
    expected = eager.model(image, generator=torch.Generator().manual_seed(1)).loss
    got = compiled.model(image, generator=torch.Generator().manual_seed(1)).loss
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    got.backward()
    assert all(p.grad is not None for p in compiled.model.encoder.parameters() if p.requires_grad)


def test_eager_task_is_not_compiled():
    task = _task(False)
    assert task.model is not None and task.model._compiled_call_impl is None
    assert _task(True).model._compiled_call_impl is not None
