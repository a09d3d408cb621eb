"""UniPre3D object level: Gaussian head, fusion, loss, batched rendering and the models on Point-MAE and
PointMLP (tiny sizes)."""

import math

import pytest
import torch

from ppt.models import PointMAE, UniPre3D, UniPre3DPointMLP, weighted_l2_loss
from ppt.models.image_encoders import ConvImageEncoder, FeatureAdapter, VAEImageEncoder, create_image_encoder
from ppt.models.unipre3d import GaussianHead, PixelFeatureFusion, gaussian_channels, nearest_point_pixels
from ppt.ops import rasterize_gaussians

pytestmark = pytest.mark.usefixtures("single_thread")


def _tiny_model(**overrides):
    options = dict(num_groups=8, group_size=8, depth=1, dim=32, heads=2, drop_path=0.0, image_size=(20, 16))
    options.update(overrides)
    return UniPre3D(**options)


def _orbit_cameras(batch: int, views: int, width: int, height: int, distance: float = 2.5):
    """Cameras on a circle around the origin looking at it (OpenCV axes), with square-pixel intrinsics."""
    viewmats = torch.zeros(batch, views, 4, 4)
    for b in range(batch):
        for v in range(views):
            angle = 2 * math.pi * (v + 0.3 * b) / views
            position = torch.tensor([distance * math.sin(angle), -0.3, -distance * math.cos(angle)])
            forward = -position / position.norm()
            right = torch.linalg.cross(forward, torch.tensor([0.0, -1.0, 0.0]))
            right = right / right.norm()
            down = torch.linalg.cross(forward, right)
            rotation = torch.stack([right, down, forward])  # rows: camera axes in world coordinates
            viewmats[b, v, :3, :3] = rotation
            viewmats[b, v, :3, 3] = -rotation @ position
            viewmats[b, v, 3, 3] = 1.0
    Ks = torch.tensor([[18.0, 0.0, width / 2], [0.0, 18.0, height / 2], [0.0, 0.0, 1.0]]).expand(batch, views, 3, 3)
    return viewmats, Ks.clone()


def test_head_channels_and_activations():
    assert sum(gaussian_channels(1)) == 23
    head = GaussianHead(8, 16, offset_scale=0.2, min_log_scale=-3.0, max_log_scale=2.0, sh_degree=1)
    assert head.mlp[-1].out_features == 23
    features, anchors = torch.randn(2, 5, 8), torch.randn(2, 5, 3)
    with torch.no_grad():
        head.mlp[-1].weight.mul_(50.0)  # push raw values into the clamps and the tanh/sigmoid tails
        raw = head.mlp(features)
        out = head(features, anchors)
    assert out.means.shape == (2, 5, 3) and out.quats.shape == (2, 5, 4) and out.scales.shape == (2, 5, 3)
    assert out.opacities.shape == (2, 5) and out.sh.shape == (2, 5, 4, 3)
    torch.testing.assert_close(out.means, anchors + torch.tanh(raw[..., 0:3]) * 0.2)
    assert (out.means - anchors).abs().max() <= 0.2 + 1e-6
    torch.testing.assert_close(out.opacities, torch.sigmoid(raw[..., 3]))
    torch.testing.assert_close(out.scales, torch.exp(raw[..., 4:7].clamp(-3.0, 2.0)))
    assert out.scales.min() >= math.exp(-3.0) - 1e-6 and out.scales.max() <= math.exp(2.0) + 1e-5
    assert (raw[..., 4:7] < -3.0).any() and (raw[..., 4:7] > 2.0).any()  # both clamps were exercised
    torch.testing.assert_close(out.quats, raw[..., 7:11] / raw[..., 7:11].norm(dim=-1, keepdim=True))
    torch.testing.assert_close(out.sh[..., 0, :], raw[..., 11:14])  # DC first
    torch.testing.assert_close(out.sh[..., 1:, :].flatten(-2), raw[..., 14:23])


def test_head_rejects_bad_arguments():
    with pytest.raises(ValueError, match="min_log_scale"):
        GaussianHead(8, min_log_scale=1.0, max_log_scale=1.0)
    with pytest.raises(ValueError, match="offset_scale"):
        GaussianHead(8, offset_scale=0.0)
    with pytest.raises(ValueError, match="sh_degree"):
        GaussianHead(8, sh_degree=4)
    with pytest.raises(ValueError, match="share"):
        GaussianHead(8)(torch.randn(2, 5, 8), torch.randn(2, 4, 3))


def test_nearest_point_pixels_z_buffer():
    # Camera at the origin looking along +z; 8 x 8 pixels, f = 10, principal point (4, 4).
    viewmats = torch.eye(4).expand(2, 4, 4).clone()
    viewmats[1, :3, 3] = torch.tensor([0.0, 0.0, 1.0])  # second view: the scene one unit further away
    Ks = torch.tensor([[10.0, 0.0, 4.0], [0.0, 10.0, 4.0], [0.0, 0.0, 1.0]]).expand(2, 3, 3)
    points = torch.tensor([
        [0.0, 0.0, 2.0],     # 0: pixel (u 4, v 4), behind point 1
        [0.0, 0.0, 1.0],     # 1: pixel (4, 4), nearest
        [0.25, -0.1, 1.0],   # 2: u = 6.5, v = 3 -> pixel (6, 3)
        [0.0, 0.0, -1.0],    # 3: behind the camera
        [10.0, 0.0, 1.0],    # 4: outside the image
        [0.0, 0.0, 1.0],     # 5: same depth as point 1: the lower index (1) wins
    ]).expand(2, 6, 3)
    pixels = nearest_point_pixels(points, viewmats, Ks, 8, 8)
    assert pixels[0].tolist() == [-1, 4 * 8 + 4, 3 * 8 + 6, -1, -1, -1]
    # View 1 (depths + 1): point 3 now sits at depth 0 (not in front); point 2 projects to u = 5.25.
    assert pixels[1].tolist() == [-1, 4 * 8 + 4, int(10 * -0.1 / 2 + 4) * 8 + 5, -1, -1, -1]


def test_fusion_takes_the_winning_pixel_feature():
    viewmats = torch.eye(4).expand(1, 4, 4)
    Ks = torch.tensor([[10.0, 0.0, 4.0], [0.0, 10.0, 4.0], [0.0, 0.0, 1.0]]).expand(1, 3, 3)
    points = torch.tensor([[[0.0, 0.0, 2.0], [0.0, 0.0, 1.0], [0.25, -0.1, 1.0]]])
    rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    feature_map = torch.stack([1 + rows * 8 + cols, 1000 + rows * 8 + cols])[None]  # (1, 2, 8, 8), all positive
    fusion = PixelFeatureFusion(point_channels=1, image_channels=2, out_channels=2)
    with torch.no_grad():  # output = ReLU(picked pixel feature): the point feature is ignored
        fusion.mlp[0].weight.copy_(torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
        fusion.mlp[0].bias.zero_()
    out = fusion(torch.randn(1, 3, 1), points, feature_map, viewmats, Ks)
    expected = torch.tensor([[0.0, 0.0], [1 + 4 * 8 + 4, 1000 + 4 * 8 + 4], [1 + 3 * 8 + 6, 1000 + 3 * 8 + 6]])
    torch.testing.assert_close(out[0], expected)  # row = v, column = u; the hidden point gets zeros


def test_weighted_l2_loss_on_a_hand_made_mask():
    images = torch.tensor([[[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]],
                            [[0.5, 0.5, 0.5], [0.0, 0.0, 1e-7]]]])  # (1, 2, 2, 3): pixels 0 and 3 background
    renders = torch.full_like(images, 0.5)
    # weights: background 2 * 1 / 5 = 0.4, object 2 * 4 / 5 = 1.6; squared errors per channel below
    errors = torch.tensor([[0.25] * 3, [0.25] * 3, [0.0] * 3, [0.25, 0.25, (0.5 - 1e-7) ** 2]])
    weights = torch.tensor([0.4, 1.6, 1.6, 0.4])[:, None]
    expected = (weights * errors).sum() / 12
    torch.testing.assert_close(weighted_l2_loss(renders, images), expected)
    # a pixel whose blue channel is 0.01 is an object pixel
    images[0, 1, 1, 2] = 0.01
    errors[3, 2] = 0.49 ** 2
    weights[3] = 1.6
    torch.testing.assert_close(weighted_l2_loss(renders, images), (weights * errors).sum() / 12)
    # equal weights: the plain mean squared error; another background colour
    torch.testing.assert_close(weighted_l2_loss(renders, images, foreground_weight=1.0), ((renders - images) ** 2).mean())
    white = torch.ones(1, 1, 2, 3)
    white[0, 0, 1] = 0.2
    loss = weighted_l2_loss(torch.zeros_like(white), white, background=(1.0, 1.0, 1.0))
    torch.testing.assert_close(loss, torch.tensor((0.4 * 3 + 1.6 * 3 * 0.04) / 6))


def test_weighted_l2_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        weighted_l2_loss(torch.zeros(1, 2, 2, 3), torch.zeros(1, 2, 3, 3))
    with pytest.raises(ValueError, match="weights"):
        weighted_l2_loss(torch.zeros(1, 2, 2, 3), torch.zeros(1, 2, 2, 3), foreground_weight=-1.0)


def test_one_batched_render_equals_per_image_calls(device):
    model = _tiny_model().eval().to(device)
    points = (torch.randn(3, 64, 3) * 0.5).to(device)
    viewmats, Ks = (t.to(device) for t in _orbit_cameras(3, 2, 20, 16))
    images = torch.rand(3, 2, 16, 20, 3, device=device)
    with torch.no_grad():
        gaussians = model.predict(points, images[:, 0], viewmats[:, 0], Ks[:, 0])
    means = gaussians.means.clone().requires_grad_(True)
    batched = model.render(gaussians._replace(means=means), viewmats, Ks)
    assert batched.shape == (3, 2, 16, 20, 3)
    assert batched.amax() > 0.05  # the Gaussians are in view
    (batched * torch.linspace(0, 1, 3, device=device)).sum().backward()
    batched_grad = means.grad.clone()
    means.grad = None
    for b in range(3):
        for v in range(2):
            single, _, _ = rasterize_gaussians(
                means[b], gaussians.quats[b], gaussians.scales[b], gaussians.opacities[b], gaussians.sh[b],
                viewmats[b, v:v + 1], Ks[b, v:v + 1], 20, 16, sh_degree=1, near_plane=0.2,
                backgrounds=torch.zeros(1, 3, device=device))
            torch.testing.assert_close(batched[b, v], single[0], atol=1e-5, rtol=1e-5)
            (single * torch.linspace(0, 1, 3, device=device)).sum().backward()
    torch.testing.assert_close(batched_grad, means.grad, atol=1e-5, rtol=1e-4)


def test_model_step_trains_everything_but_the_image_encoder(device):
    model = _tiny_model().to(device)
    model.train()
    assert not model.image_encoder.training  # the frozen encoder stays in eval mode
    assert not any(p.requires_grad for p in model.image_encoder.parameters())
    points = (torch.randn(2, 64, 3) * 0.5).to(device)
    viewmats, Ks = (t.to(device) for t in _orbit_cameras(2, 3, 20, 16))
    images = torch.rand(2, 3, 16, 20, 3, device=device)
    renders = model(points, images, viewmats, Ks)
    assert renders.shape == (2, 3, 16, 20, 3) and torch.isfinite(renders).all()
    weighted_l2_loss(renders, images).backward()
    for name in ("backbone.blocks.blocks.0.attn.qkv.weight", "adapter.1.weight", "fusion.mlp.0.weight",
                 "head.mlp.2.weight", "backbone.encoder.first_conv.0.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert all(p.grad is None for p in model.image_encoder.parameters())


def test_reference_image_changes_the_gaussians_only_with_the_2d_branch():
    points = torch.randn(2, 64, 3) * 0.5
    viewmats, Ks = _orbit_cameras(2, 1, 20, 16)
    images = torch.rand(2, 1, 16, 20, 3)
    for encoder, changes in (("conv", True), (None, False)):
        model = _tiny_model(image_encoder=encoder).eval()
        with torch.no_grad():
            first = model.predict(points, images[:, 0], viewmats[:, 0], Ks[:, 0])
            second = model.predict(points, images[:, 0].flip(1), viewmats[:, 0], Ks[:, 0])
        assert (not torch.equal(first.means, second.means)) == changes
    with pytest.raises(ValueError, match="reference images"):
        _tiny_model().predict(points)


def test_model_rejects_images_of_another_size():
    model = _tiny_model()
    viewmats, Ks = _orbit_cameras(1, 2, 20, 16)
    with pytest.raises(ValueError, match="image_size"):
        model(torch.randn(1, 64, 3), torch.rand(1, 2, 16, 16, 3), viewmats, Ks)
    with pytest.raises(ValueError, match=r"\(B, V, H, W, 3\)"):
        model(torch.randn(1, 64, 3), torch.rand(1, 16, 20, 3), viewmats, Ks)


def test_backbone_weights_load_into_the_point_mae_classifier():
    model = _tiny_model()
    classifier = PointMAE(num_classes=5, num_groups=8, group_size=8, depth=1, dim=32, heads=2)
    result = classifier.load_state_dict(model.backbone.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(key.startswith("cls_head_finetune.") for key in result.missing_keys)
    features = PointMAE(num_classes=0, num_groups=8, group_size=8, depth=1, dim=32, heads=2).eval()
    assert features(torch.randn(2, 64, 3)).shape == (2, 64)


def test_conv_image_encoder_is_fixed_and_full_resolution():
    first, second = ConvImageEncoder(), create_image_encoder("conv")
    images = torch.rand(2, 3, 12, 10)
    out = first(images)
    assert out.shape == (2, first.out_channels, 12, 10) and first.out_channels == 128
    torch.testing.assert_close(out, second(images))  # the same filters in every process
    assert FeatureAdapter(first.out_channels, 16)(out).shape == (2, 16, 12, 10)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        first(torch.rand(2, 12, 10, 3))


def test_create_image_encoder_errors(monkeypatch):
    with pytest.raises(ValueError, match="image encoder must be one of"):
        create_image_encoder("resnet")
    monkeypatch.delenv("PPT_SD_VAE", raising=False)
    with pytest.raises(ValueError, match="PPT_SD_VAE"):
        create_image_encoder("sd-vae")


def test_vae_encoder_takes_the_last_decoder_block(tmp_path, monkeypatch):
    diffusers = pytest.importorskip("diffusers")
    vae = diffusers.AutoencoderKL(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, norm_num_groups=32)
    encoder = VAEImageEncoder(vae)
    assert encoder.out_channels == 32 and not any(p.requires_grad for p in encoder.parameters())
    images = torch.rand(2, 3, 16, 12)
    features = encoder(images)
    assert features.shape == (2, 32, 16, 12)  # the last up-block runs at the input resolution
    captured = []
    handle = vae.decoder.up_blocks[1].register_forward_hook(lambda module, args, output: captured.append(output))
    with torch.no_grad():
        vae(images * 2 - 1, sample_posterior=False)
    handle.remove()
    torch.testing.assert_close(features, captured[0])
    vae.save_pretrained(tmp_path / "vae")
    monkeypatch.setenv("PPT_SD_VAE", str(tmp_path / "vae"))
    for name in ("sd-vae", f"sd-vae:{tmp_path / 'vae'}"):
        torch.testing.assert_close(create_image_encoder(name)(images), features)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        create_image_encoder(f"sd-vae:{tmp_path / 'missing'}")
    model = _tiny_model(image_encoder=encoder)
    viewmats, Ks = _orbit_cameras(1, 2, 20, 16)
    assert model(torch.randn(1, 64, 3), torch.rand(1, 2, 16, 20, 3), viewmats, Ks).shape == (1, 2, 16, 20, 3)


def test_pointmlp_model_puts_a_gaussian_on_every_input_point_and_trains():
    backbone = dict(points=64, embed_dim=8, k_neighbors=(8, 8, 8, 4), pre_blocks=(1, 1, 1, 1), pos_blocks=(1, 1, 1, 1),
                    de_dims=(32, 16, 16, 16), de_blocks=(1, 1, 1, 1))
    model = UniPre3DPointMLP(backbone=backbone, image_size=(20, 16), head_hidden=8)
    assert model.head.mlp[0].in_features == 16  # the decoder's last width
    points = torch.randn(2, 80, 3) * 0.5
    viewmats, Ks = _orbit_cameras(2, 2, 20, 16)
    images = torch.rand(2, 2, 16, 20, 3)
    gaussians = model.predict(points, images[:, 0], viewmats[:, 0], Ks[:, 0])
    assert gaussians.means.shape == (2, 80, 3)  # one per input point, around it
    assert ((gaussians.means - points).abs() <= 1.0).all()
    renders = model(points, images, viewmats, Ks)
    weighted_l2_loss(renders, images).backward()
    for name in ("embedding.net.0.weight", "local_grouper_list.3.affine_alpha", "decode_list.3.fuse.net.0.weight"):
        grad = model.backbone.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    for name in ("fusion.mlp.0.weight", "head.mlp.2.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
