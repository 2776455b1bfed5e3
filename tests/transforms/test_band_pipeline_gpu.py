import pytest
import torch

from geomae.bands import L2A_BANDS
from geomae.stats import BandStats
from geomae.transforms import BandPipeline

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_pipeline_runs_on_gpu_and_matches_cpu():
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 5000, (8, 12, 32, 32), generator=g).to(torch.float32)
    image[0, 2, :4, :4] = float("nan")
    image[1, :, 5, 5] = 0.0
    mask = torch.randint(0, 5, (8, 32, 32), generator=g)
    pipe = BandPipeline(
        source_bands=L2A_BANDS, bands="10m", stats=BandStats.default(), nodata=0, augment="full"
    )
    cpu = pipe({"image": image, "mask": mask}, augment=False)
    pipe.to("cuda")
    gpu = pipe({"image": image.cuda(), "mask": mask.cuda()}, augment=False)
    assert gpu["image"].device.type == "cuda" and gpu["valid"].device.type == "cuda"
    torch.testing.assert_close(gpu["image"].cpu(), cpu["image"])
    assert torch.equal(gpu["valid"].cpu(), cpu["valid"])
    aug = pipe({"image": image.cuda(), "mask": mask.cuda()}, augment=True)
    assert aug["image"].shape == (8, 4, 32, 32) and aug["mask"].dtype == torch.int64
    assert aug["mask"].device.type == "cuda" and torch.isfinite(aug["image"]).all()


def test_pipeline_accepts_uint16_on_gpu():
    image = torch.randint(1, 5000, (2, 12, 16, 16)).to(torch.float32)
    pipe = BandPipeline(source_bands=L2A_BANDS, bands="rgb", stats=BandStats.default()).cuda()
    out = pipe({"image": image.to(torch.uint16).cuda()}, augment=False)
    ref = pipe({"image": image.cuda()}, augment=False)
    assert torch.equal(out["image"], ref["image"])
