import os

from nas.activations import calibrate
from nas.bld import BLDConfig, BLDJob, plan_jobs, run_bld
from nas.space import GQA, SWIGLU, AttentionVariant, BlockVariant, FFNVariant, SearchSpace, parent_variant


def test_plan_decoupled_and_coupled(parent):
    space = SearchSpace.from_parent(parent.config)
    assert space.kv_heads == (2, 1) and space.ffn_widths == (512, 256)  # widths live on the 256 grid
    decoupled = plan_jobs(parent.config, space)
    per_layer = (len(space.kv_heads) - 1) + (len(space.ffn_widths) - 1)
    assert len(decoupled) == parent.config.num_hidden_layers * per_layer
    coupled = plan_jobs(parent.config, space, coupled=True)
    assert len(coupled) > len(decoupled) and all(j.part == "block" for j in coupled)


def test_bld_lowers_normalized_mse_and_resumes(parent_dir, parent, batch, tmp_path):
    calib = tmp_path / "calib.pt"
    calibrate(parent, batch, calib)
    par = parent_variant(parent.config, 1)
    jobs = [BLDJob(1, BlockVariant(AttentionVariant(GQA, 1), par.ffn), "attn"),
            BLDJob(2, BlockVariant(par.attention, FFNVariant(SWIGLU, 256)), "ffn")]
    cfg = BLDConfig(steps=40, lr=2e-3, batch_size=4)
    first = run_bld(parent_dir, str(calib), str(tmp_path / "bld"), jobs, cfg, use_ray=False)
    for r in first:
        assert 0 < r.loss_final < 0.8 * r.loss_init and not r.skipped
    mtimes = [os.path.getmtime(r.path) for r in first]
    again = run_bld(parent_dir, str(calib), str(tmp_path / "bld"), jobs, cfg, use_ray=False)
    assert all(r.skipped for r in again)
    assert [os.path.getmtime(r.path) for r in again] == mtimes
    assert [r.loss_final for r in again] == [r.loss_final for r in first]


def test_bld_jobs_run_as_ray_tasks(parent_dir, parent, batch, tmp_path):
    calib = tmp_path / "calib.pt"
    calibrate(parent, batch, calib)
    par = parent_variant(parent.config, 0)
    jobs = [BLDJob(0, BlockVariant(par.attention, FFNVariant(SWIGLU, 256)), "ffn"),
            BLDJob(0, BlockVariant(AttentionVariant(GQA, 1), par.ffn), "attn")]
    res = run_bld(parent_dir, str(calib), str(tmp_path / "bld"), jobs, BLDConfig(steps=5, batch_size=4), use_ray=True)
    assert [r.job for r in res] == jobs and all(r.loss_final < r.loss_init for r in res)
