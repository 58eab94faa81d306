import pytest
import torch

from proctovision.models.registry import (
    STUDY_BACKBONES,
    UnknownBackboneError,
    cam_target_layer,
    create_backbone,
    get_backbone,
    list_backbones,
)


def test_the_eight_study_backbones_and_lite0_are_registered():
    names = {spec.name for spec in list_backbones()}
    assert set(STUDY_BACKBONES) == {
        "xception", "resnet50v2", "efficientnetv2_s", "vit_s16", "convmixer_768_32", "resnet18", "resnet34",
        "densenet121",
    }
    assert "efficientnet_lite0" in names


@pytest.mark.parametrize("alias, name", [("ViT-S/16", "vit_s16"), ("resnet-34", "resnet34"), ("lite0", "efficientnet_lite0")])
def test_aliases_resolve(alias: str, name: str):
    assert get_backbone(alias).name == name


@pytest.mark.parametrize("name", [spec.name for spec in list_backbones()])
def test_every_entry_builds_and_knows_its_cam_layer(name: str):
    spec = get_backbone(name)
    backbone = create_backbone(spec)
    layer = cam_target_layer(spec, backbone)
    assert isinstance(layer, torch.nn.Module)
    assert spec.preprocessing.input_size >= 224
    assert len(spec.preprocessing.mean) == 3 and len(spec.preprocessing.std) == 3


def test_vit_accepts_the_first_studys_331_px():
    spec = get_backbone("vit_s16")
    backbone = create_backbone(spec, image_size=336)
    with torch.no_grad():
        assert backbone.eval()(torch.zeros(1, 3, 336, 336)).shape == (1, 384)


def test_any_timm_name_works_and_unknown_names_are_explained():
    spec = get_backbone("mobilenetv3_small_100")
    assert spec.timm_name == "mobilenetv3_small_100"
    with pytest.raises(UnknownBackboneError, match="resnet18"):
        get_backbone("resnet1888")
