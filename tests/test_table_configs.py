"""The paper's table configs (configs/paper/**): one per row of Tables 1-7, each the base with
exactly its row's switches, carrying the paper's published numbers; and tools/list_configs.py."""
import glob
import json
import os
import re

import pytest
from omegaconf import OmegaConf

import ddod  # noqa: F401
from detectron2.config import LazyConfig, instantiate

from .common import PAPER_CONFIGS, ROOT, load_tool, paper_config

TABLE_ROWS = {
    "table1_retinanet_iou": [f"cls{c}_reg{r}" for c in (0.4, 0.5, 0.6) for r in (0.4, 0.5, 0.6)],
    "table2_fixed_level_weights": ["w1to1", "w1to2", "w1to3", "w2to1", "w3to1"],
    "table3_bases": ["retinanet", "retinanet_ddod", "fcos", "fcos_ddod", "atss", "atss_ddod"],
    "table4_components": ["baseline", "assignment", "spatial", "supervision", "all"],
    "table5_alpha": [f"cls{c}_reg{r}" for c in (0.5, 0.6, 0.7, 0.8) for r in (0.5, 0.6, 0.7, 0.8)],
    "table6_dcn_position": [f"position{p}" for p in (1, 2, 3, 4)],
    "table7_reweighting": [
        f"{s}{c}" for s in ("sum_reweight", "linear_reweight", "linear_interpolate")
        for c in ("", "_cumulative")
    ],  # fmt: skip
}
ALL = sorted(f"{t}/{r}.py" for t, rows in TABLE_ROWS.items() for r in rows)

ASSIGN = {"cls_assigner", "reg_assigner"}
DCN = {"head.cls_deform_index", "head.reg_deform_index"}
REWEIGHT = {"level_reweighting"}
# What each config may change in its base's model config: its own switches and nothing else.
ALLOWED = {
    "table1_retinanet_iou": ASSIGN,
    "table2_fixed_level_weights": REWEIGHT,
    "table5_alpha": ASSIGN,
    "table6_dcn_position": DCN,
    "table7_reweighting": REWEIGHT,
    "table3_bases/retinanet": set(),
    "table3_bases/fcos": set(),
    "table3_bases/atss": set(),
    "table3_bases/retinanet_ddod": ASSIGN | DCN | REWEIGHT,
    "table3_bases/atss_ddod": ASSIGN | DCN | REWEIGHT,
    # DDOD-FCOS: cost-based assignment needs the IoU branch instead of centerness
    "table3_bases/fcos_ddod": ASSIGN | DCN | REWEIGHT
    | {"quality_target", "centerness_weighted_box_loss", "head.bbox_bias_init"},
    "table4_components/baseline": set(),
    "table4_components/assignment": ASSIGN,
    "table4_components/spatial": DCN,
    "table4_components/supervision": REWEIGHT,
    "table4_components/all": ASSIGN | DCN | REWEIGHT,
}


def test_one_config_per_table_row():
    found = sorted(os.path.relpath(p, PAPER_CONFIGS)
                   for p in glob.glob(os.path.join(PAPER_CONFIGS, "*", "*.py")))  # fmt: skip
    assert found == ALL


def _flatten(node, prefix=""):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def _base_of(cfg_path):
    with open(cfg_path) as f:
        return re.search(r"from \.\.\.common\.models\.(\w+) import model", f.read()).group(1)


@pytest.mark.parametrize("rel", ALL)
def test_config_changes_only_its_switches(rel):
    path = os.path.join(PAPER_CONFIGS, rel)
    base_path = os.path.join(ROOT, "configs", "common", "models", _base_of(path) + ".py")
    base = LazyConfig.load(base_path)
    cfg = LazyConfig.load(path)
    a = _flatten(OmegaConf.to_container(base.model, resolve=False))
    b = _flatten(OmegaConf.to_container(cfg.model, resolve=False))
    changed = {k for k in a.keys() | b.keys() if a.get(k, "<missing>") != b.get(k, "<missing>")}
    table, row = os.path.splitext(rel)[0].split("/")
    allowed = ALLOWED.get(f"{table}/{row}", ALLOWED.get(table))
    touched = {k for k in changed if not any(k == p or k.startswith(p + ".") for p in allowed)}
    assert not touched, f"{rel} also changes {sorted(touched)}"
    # the COCO R-50 1x recipe of configs/ddod_R50_1x.py
    assert cfg.train.max_iter == 90000 and cfg.dataloader.train.total_batch_size == 16
    assert cfg.optimizer.lr == 0.01 and cfg.dataloader.train.dataset.names == "coco_2017_train"
    assert cfg.model.backbone.bottom_up.stages.depth == 50
    assert cfg.train.output_dir == f"./output/paper/{table}/{row}"


def _model(rel):
    return instantiate(paper_config(rel).model)


@pytest.mark.parametrize("rel", [r for r in ALL if r.startswith(("table1", "table5"))])
def test_assigner_parameters_follow_the_row(rel):
    name = os.path.basename(rel)[: -len(".py")]
    cls_value, reg_value = map(float, re.findall(r"(?:cls|reg)([\d.]+)", name))
    cfg = paper_config(rel).model
    if rel.startswith("table1"):
        assert cfg.cls_assigner.pos_iou_thresh == cls_value
        assert cfg.reg_assigner.pos_iou_thresh == reg_value
        assert cfg.cls_assigner.neg_iou_thresh == 0.4  # RetinaNet's background threshold
    else:
        assert (cfg.cls_assigner.alpha, cfg.reg_assigner.alpha) == (cls_value, reg_value)


def test_head_and_reweighting_parameters_follow_the_row():
    for p in (1, 2, 3, 4):
        head = paper_config(f"table6_dcn_position/position{p}.py").model.head
        assert head.cls_deform_index == head.reg_deform_index == p - 1
    for name in TABLE_ROWS["table2_fixed_level_weights"]:
        rw = paper_config(f"table2_fixed_level_weights/{name}.py").model.level_reweighting
        start, end = map(float, re.match(r"w(\d)to(\d)", name).groups())
        assert (rw.strategy, rw.start, rw.end) == ("fixed_linear", start, end)
    for name in TABLE_ROWS["table7_reweighting"]:
        rw = _model(f"table7_reweighting/{name}.py").level_reweighting
        assert rw.strategy == name.replace("_cumulative", "")
        assert rw.cumulative == name.endswith("_cumulative")
        assert not rw.shared_counters  # the paper's separate counters


def _describe(model):
    """Everything that defines a built detector: its modules (with their extra_repr) and the
    plain attributes of the meta-architecture."""
    attrs = {k: v for k, v in vars(model).items() if isinstance(v, (int, float, str, bool))}
    return repr(model), attrs


def test_table4_all_and_table3_atss_ddod_are_configs_ddod_r50_1x():
    reference = LazyConfig.load(os.path.join(ROOT, "configs", "ddod_R50_1x.py"))
    expected = _describe(instantiate(reference.model))
    for rel in ("table4_components/all.py", "table3_bases/atss_ddod.py"):
        cfg = paper_config(rel)
        assert _describe(instantiate(cfg.model)) == expected, rel
        for key in ("dataloader", "optimizer", "lr_multiplier"):
            assert OmegaConf.to_container(cfg[key]) == OmegaConf.to_container(reference[key]), key


def test_paper_numbers_are_recorded_and_consistent():
    rows = {}
    for rel in ALL:
        paper = paper_config(rel).paper
        assert paper.table == int(rel[len("table")]), rel
        assert isinstance(paper.AP, float) and 30 < paper.AP < 45, rel
        rows[rel[:-3]] = {k: v for k, v in paper.items() if k.startswith("AP")}
    # Tables 1 and 5 report AP only; the others all six metrics.
    assert all(len(v) == 1 for k, v in rows.items() if k.startswith(("table1", "table5")))
    assert all(len(v) == 6 for k, v in rows.items() if not k.startswith(("table1", "table5")))
    # Rows the paper reports twice must agree (a guard against transcription errors).
    atss = rows["table3_bases/atss"]
    assert rows["table4_components/baseline"] == atss == rows["table2_fixed_level_weights/w1to1"]
    assert rows["table4_components/all"] == rows["table3_bases/atss_ddod"]
    assert rows["table7_reweighting/linear_reweight"] == rows["table2_fixed_level_weights/w1to2"]
    assert rows["table5_alpha/cls0.8_reg0.5"]["AP"] == rows["table4_components/assignment"]["AP"]
    assert rows["table5_alpha/cls0.5_reg0.5"]["AP"] == atss["AP"]
    assert rows["table6_dcn_position/position1"]["AP"] == rows["table4_components/spatial"]["AP"]
    assert rows["table1_retinanet_iou/cls0.5_reg0.4"]["AP"] == rows["table3_bases/retinanet"]["AP"]
    # and a few cells, as printed in the paper
    assert rows["table3_bases/fcos_ddod"] == dict(AP=41.6, AP50=59.7, AP75=45.3, APs=24.3,
                                                  APm=45.0, APl=55.1)  # fmt: skip
    assert rows["table1_retinanet_iou/cls0.4_reg0.6"]["AP"] == 33.2
    assert rows["table5_alpha/cls0.7_reg0.6"]["AP"] == 40.1
    assert rows["table7_reweighting/sum_reweight_cumulative"]["APl"] == 51.0


def test_list_configs_prints_every_row_and_fills_ours_from_a_run(tmp_path, capsys):
    list_configs = load_tool("list_configs")
    rows = list_configs.main(["--method", "DDOD", "--table", "6", "--output-root", str(tmp_path)])
    out = capsys.readouterr().out
    assert [r["config"] for r in rows] == [f"configs/paper/table6_dcn_position/position{p}.py"
                                           for p in (1, 2, 3, 4)]  # fmt: skip
    assert all(r["ours"] is None for r in rows)
    assert "| 6 | position 1 | `configs/paper/table6_dcn_position/position1.py` | 40.6 |" in out
    # a finished run of position 2 fills its "ours" cell
    run = tmp_path / "output" / "paper" / "table6_dcn_position" / "position2"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(
        json.dumps({"iteration": 5, "total_loss": 1.0}) + "\n"
        + json.dumps({"iteration": 9, "bbox/AP": 40.25, "bbox/AP50": 58.0}) + "\n"
    )
    rows = list_configs.main(["--method", "DDOD", "--table", "6", "--output-root", str(tmp_path)])
    assert [r["ours"] for r in rows] == [None, 40.25, None, None]
    assert capsys.readouterr().out.splitlines()[3].endswith("| 40.2 |")
