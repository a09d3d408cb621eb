"""Pointcept's Point Transformer V3 (``PT-v3m1``) written against the spconv API: the reference
network of the PTv3 benchmark and of the logits tests. Its state_dict has Pointcept's keys
(``backbone.*``, ``seg_head.*`` of ``DefaultSegmentorV2``), so
``ppt.models.load_weights(model, state, format="pointcept")`` loads it into
:class:`ppt.models.PointTransformerV3`.

Written after ``pointcept/models/point_transformer_v3/point_transformer_v3m1_base.py``,
``models/utils/structure.py`` (``Point``), ``models/modules.py`` (``PointSequential``) and
PTv3's ``PDNorm`` (Pointcept d74c646), with these substitutions so that it runs on a CPU
install of spconv: the non-flash attention path only (``enable_flash=False``: Pointcept's own
explicit softmax attention; flash-attn is CUDA-only), ``torch_scatter.segment_csr`` replaced by
``torch.Tensor.scatter_reduce``, ``addict.Dict`` by a dict with attribute access, timm's
``DropPath`` by the same per-row stochastic depth, and the serialization codes computed by
:mod:`ppt.ops._reference` (pure PyTorch, tested bit for bit against Pointcept's encoders). The
pooling layers shuffle the orders only when the model's ``shuffle_orders`` is set (Pointcept's
shuffle always), so that the reference is deterministic with ``shuffle_orders=False``.
"""

from __future__ import annotations

from functools import partial
from types import ModuleType

import torch
from torch import nn

from ppt.ops import _reference

__all__ = ["pointcept_ptv3", "point_dict", "default_backbone"]


class Point(dict):
    """Pointcept's ``Point``: a dict of a batched point cloud with attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as error:
            raise AttributeError(name) from error

    def __setattr__(self, name, value):
        self[name] = value


def _offset(batch: torch.Tensor) -> torch.Tensor:
    return torch.cumsum(torch.bincount(batch), dim=0).long()


def _bincount(offset: torch.Tensor) -> torch.Tensor:
    return torch.diff(offset, prepend=offset.new_zeros(1))


def pointcept_ptv3(spconv: ModuleType, num_classes: int = 20, **backbone_kwargs) -> nn.Module:
    """``DefaultSegmentorV2(backbone=PT-v3m1(**backbone_kwargs), num_classes)`` on ``spconv``
    (``spconv.pytorch``); ``forward(point_dict)`` returns the ``(N, num_classes)`` logits of a dict
    with ``feat``, ``grid_coord`` and ``batch``."""

    class PointModule(nn.Module):
        pass

    class BiasedSubMConv3d(spconv.SubMConv3d):
        """spconv's CPU path cannot fuse a bias into the convolution, which its inference path asks
        for; its training path adds the bias afterwards, so this convolution always takes that path
        (the module has no other mode-dependent behaviour)."""

        def train(self, mode: bool = True):
            return super().train(True)

    class PointSequential(PointModule):
        def __init__(self, *modules, **named):
            super().__init__()
            for index, module in enumerate(modules):
                self.add_module(str(index), module)
            for name, module in named.items():
                self.add_module(name, module)

        def add(self, module, name=None):
            self.add_module(str(len(self._modules)) if name is None else name, module)

        def forward(self, point):
            for module in self._modules.values():
                if isinstance(module, PointModule):
                    point = module(point)
                elif spconv.modules.is_spconv_module(module):
                    point.sparse_conv_feat = module(point.sparse_conv_feat)
                    point.feat = point.sparse_conv_feat.features
                else:
                    point.feat = module(point.feat)
                    if "sparse_conv_feat" in point:
                        point.sparse_conv_feat = point.sparse_conv_feat.replace_feature(point.feat)
            return point

    class PDNorm(PointModule):
        def __init__(self, num_features, norm_layer, conditions, context_channels=256, adaptive=False):
            super().__init__()
            self.conditions, self.adaptive = conditions, adaptive
            self.norm = nn.ModuleList([norm_layer(num_features) for _ in conditions])
            if adaptive:
                self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(context_channels, 2 * num_features))

        def forward(self, point):
            condition = point.condition if isinstance(point.condition, str) else point.condition[0]
            point.feat = self.norm[self.conditions.index(condition)](point.feat)
            if self.adaptive:
                shift, scale = self.modulation(point.context).chunk(2, dim=1)
                point.feat = point.feat * (1.0 + scale) + shift
            return point

    class DropPath(nn.Module):
        def __init__(self, p):
            super().__init__()
            self.p = p

        def forward(self, x):
            if not self.training:
                return x
            keep = x.new_empty((x.shape[0], 1)).bernoulli_(1 - self.p)
            return x * keep / (1 - self.p)

    def serialization(point, order, shuffle):
        depth = int(point.grid_coord.max() + 1).bit_length()
        point.serialized_depth = depth
        code = torch.stack([_reference.serialization_encode(point.grid_coord, point.batch, depth, o) for o in order])
        sort = torch.argsort(code)
        inverse = torch.zeros_like(sort).scatter_(1, sort, torch.arange(code.shape[1]).repeat(code.shape[0], 1))
        if shuffle:
            perm = torch.randperm(code.shape[0])
            code, sort, inverse = code[perm], sort[perm], inverse[perm]
        point.serialized_code, point.serialized_order, point.serialized_inverse = code, sort, inverse

    def sparsify(point):
        shape = torch.add(torch.max(point.grid_coord, dim=0).values, 96).tolist()
        point.sparse_conv_feat = spconv.SparseConvTensor(
            features=point.feat, indices=torch.cat([point.batch.unsqueeze(-1).int(), point.grid_coord.int()], 1),
            spatial_shape=shape, batch_size=point.batch[-1].tolist() + 1)

    class SerializedAttention(PointModule):
        def __init__(self, channels, num_heads, patch_size, qkv_bias, qk_scale, attn_drop, proj_drop, order_index,
                     enable_rpe):
            super().__init__()
            if enable_rpe:
                raise NotImplementedError("the reference PTv3 has no relative position encoding")
            self.channels, self.num_heads = channels, num_heads
            self.scale = qk_scale or (channels // num_heads) ** -0.5
            self.order_index = order_index
            self.patch_size_max, self.patch_size = patch_size, 0
            self.attn_drop = nn.Dropout(attn_drop)
            self.qkv = nn.Linear(channels, channels * 3, bias=qkv_bias)
            self.proj = nn.Linear(channels, channels)
            self.proj_drop = nn.Dropout(proj_drop)
            self.softmax = nn.Softmax(dim=-1)

        def padding_and_inverse(self, point):
            if "pad" in point:
                return point.pad, point.unpad
            K = self.patch_size
            offset = point.offset
            bincount = _bincount(offset)
            padded = torch.div(bincount + K - 1, K, rounding_mode="trunc") * K
            mask_pad = bincount > K
            padded = ~mask_pad * bincount + mask_pad * padded
            _offset = nn.functional.pad(offset, (1, 0))
            _offset_pad = nn.functional.pad(torch.cumsum(padded, dim=0), (1, 0))
            pad = torch.arange(_offset_pad[-1])
            unpad = torch.arange(_offset[-1])
            for i in range(len(offset)):
                unpad[_offset[i]:_offset[i + 1]] += _offset_pad[i] - _offset[i]
                if bincount[i] != padded[i]:
                    tail = _offset_pad[i + 1] - K + (bincount[i] % K)
                    pad[tail:_offset_pad[i + 1]] = pad[tail - K:_offset_pad[i + 1] - K]
                pad[_offset_pad[i]:_offset_pad[i + 1]] -= _offset_pad[i] - _offset[i]
            point.pad, point.unpad = pad, unpad
            return pad, unpad

        def forward(self, point):
            self.patch_size = min(_bincount(point.offset).min().tolist(), self.patch_size_max)
            H, K, C = self.num_heads, self.patch_size, self.channels
            pad, unpad = self.padding_and_inverse(point)
            order = point.serialized_order[self.order_index][pad]
            inverse = unpad[point.serialized_inverse[self.order_index]]
            qkv = self.qkv(point.feat)[order]
            q, k, v = qkv.reshape(-1, K, 3, H, C // H).permute(2, 0, 3, 1, 4).unbind(dim=0)
            attn = self.softmax((q * self.scale) @ k.transpose(-2, -1))
            attn = self.attn_drop(attn).to(qkv.dtype)
            feat = (attn @ v).transpose(1, 2).reshape(-1, C)[inverse]
            point.feat = self.proj_drop(self.proj(feat))
            return point

    class MLP(nn.Module):
        def __init__(self, channels, hidden, drop):
            super().__init__()
            self.fc1, self.act, self.fc2 = nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels)
            self.drop = nn.Dropout(drop)

        def forward(self, x):
            return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))

    class Block(PointModule):
        def __init__(self, channels, num_heads, patch_size, mlp_ratio, qkv_bias, qk_scale, attn_drop, proj_drop,
                     drop_path, norm_layer, pre_norm, order_index, cpe_indice_key, enable_rpe):
            super().__init__()
            self.pre_norm = pre_norm
            self.cpe = PointSequential(
                BiasedSubMConv3d(channels, channels, kernel_size=3, bias=True, indice_key=cpe_indice_key),
                nn.Linear(channels, channels), norm_layer(channels))
            self.norm1 = PointSequential(norm_layer(channels))
            self.attn = SerializedAttention(channels, num_heads, patch_size, qkv_bias, qk_scale, attn_drop, proj_drop,
                                            order_index, enable_rpe)
            self.norm2 = PointSequential(norm_layer(channels))
            self.mlp = PointSequential(MLP(channels, int(channels * mlp_ratio), proj_drop))
            self.drop_path = PointSequential(DropPath(drop_path) if drop_path > 0.0 else nn.Identity())

        def forward(self, point):
            shortcut = point.feat
            point = self.cpe(point)
            point.feat = shortcut + point.feat
            shortcut = point.feat
            if self.pre_norm:
                point = self.norm1(point)
            point = self.drop_path(self.attn(point))
            point.feat = shortcut + point.feat
            if not self.pre_norm:
                point = self.norm1(point)
            shortcut = point.feat
            if self.pre_norm:
                point = self.norm2(point)
            point = self.drop_path(self.mlp(point))
            point.feat = shortcut + point.feat
            if not self.pre_norm:
                point = self.norm2(point)
            point.sparse_conv_feat = point.sparse_conv_feat.replace_feature(point.feat)
            return point

    class SerializedPooling(PointModule):
        def __init__(self, in_channels, out_channels, stride, norm_layer, act_layer, shuffle_orders):
            super().__init__()
            self.stride, self.shuffle_orders = stride, shuffle_orders
            self.proj = nn.Linear(in_channels, out_channels)
            self.norm = PointSequential(norm_layer(out_channels))
            self.act = PointSequential(act_layer())

        def forward(self, point):
            pooling_depth = (self.stride - 1).bit_length()
            if pooling_depth > point.serialized_depth:
                pooling_depth = 0
            code = point.serialized_code >> pooling_depth * 3
            _, cluster, counts = torch.unique(code[0], sorted=True, return_inverse=True, return_counts=True)
            _, indices = torch.sort(cluster)
            idx_ptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, dim=0)])
            head_indices = indices[idx_ptr[:-1]]
            code = code[:, head_indices]
            order = torch.argsort(code)
            inverse = torch.zeros_like(order).scatter_(1, order, torch.arange(code.shape[1]).repeat(code.shape[0], 1))
            if self.shuffle_orders:
                perm = torch.randperm(code.shape[0])
                code, order, inverse = code[perm], order[perm], inverse[perm]
            projected = self.proj(point.feat)
            feat = projected.new_zeros(len(counts), projected.shape[1]).scatter_reduce(  # segment_csr(max)
                0, cluster[:, None].expand_as(projected), projected, reduce="amax", include_self=False)
            pooled = Point(feat=feat, grid_coord=point.grid_coord[head_indices] >> pooling_depth,
                           serialized_code=code, serialized_order=order, serialized_inverse=inverse,
                           serialized_depth=point.serialized_depth - pooling_depth, batch=point.batch[head_indices],
                           pooling_inverse=cluster, pooling_parent=point)
            pooled.offset = _offset(pooled.batch)
            for key in ("condition", "context"):
                if key in point:
                    pooled[key] = point[key]
            pooled = self.act(self.norm(pooled))
            sparsify(pooled)
            return pooled

    class SerializedUnpooling(PointModule):
        def __init__(self, in_channels, skip_channels, out_channels, norm_layer, act_layer):
            super().__init__()
            self.proj = PointSequential(nn.Linear(in_channels, out_channels), norm_layer(out_channels), act_layer())
            self.proj_skip = PointSequential(nn.Linear(skip_channels, out_channels), norm_layer(out_channels),
                                             act_layer())

        def forward(self, point):
            parent, inverse = point.pop("pooling_parent"), point.pop("pooling_inverse")
            point = self.proj(point)
            parent = self.proj_skip(parent)
            parent.feat = parent.feat + point.feat[inverse]
            return parent

    class PointTransformerV3(PointModule):
        def __init__(self, in_channels=6, order=("z", "z-trans"), stride=(2, 2, 2, 2), enc_depths=(2, 2, 2, 6, 2),
                     enc_channels=(32, 64, 128, 256, 512), enc_num_head=(2, 4, 8, 16, 32),
                     enc_patch_size=(48, 48, 48, 48, 48), dec_depths=(2, 2, 2, 2), dec_channels=(64, 64, 128, 256),
                     dec_num_head=(4, 4, 8, 16), dec_patch_size=(48, 48, 48, 48), mlp_ratio=4, qkv_bias=True,
                     qk_scale=None, attn_drop=0.0, proj_drop=0.0, drop_path=0.3, pre_norm=True, shuffle_orders=True,
                     enable_rpe=False, pdnorm_bn=False, pdnorm_ln=False, pdnorm_adaptive=False, pdnorm_affine=True,
                     pdnorm_conditions=("ScanNet", "S3DIS", "Structured3D")):
            super().__init__()
            self.order = [order] if isinstance(order, str) else order
            self.shuffle_orders = shuffle_orders
            num_stages = len(enc_depths)
            pdnorm = partial(PDNorm, conditions=pdnorm_conditions, adaptive=pdnorm_adaptive)
            bn_layer = partial(nn.BatchNorm1d, eps=1e-3, momentum=0.01)
            bn_layer = partial(pdnorm, norm_layer=partial(bn_layer, affine=pdnorm_affine)) if pdnorm_bn else bn_layer
            ln_layer = (partial(pdnorm, norm_layer=partial(nn.LayerNorm, elementwise_affine=pdnorm_affine))
                        if pdnorm_ln else nn.LayerNorm)
            act_layer = nn.GELU
            self.embedding = PointModule()
            self.embedding.stem = PointSequential(conv=spconv.SubMConv3d(
                in_channels, enc_channels[0], kernel_size=5, padding=1, bias=False, indice_key="stem"))
            self.embedding.stem.add(bn_layer(enc_channels[0]), name="norm")
            self.embedding.stem.add(act_layer(), name="act")

            def block(channels, heads, patch, path, i, s):
                return Block(channels, heads, patch, mlp_ratio, qkv_bias, qk_scale, attn_drop, proj_drop, path,
                             ln_layer, pre_norm, i % len(self.order), f"stage{s}", enable_rpe)

            paths = [x.item() for x in torch.linspace(0, drop_path, sum(enc_depths))]
            self.enc = PointSequential()
            for s in range(num_stages):
                stage_paths = paths[sum(enc_depths[:s]):sum(enc_depths[:s + 1])]
                enc = PointSequential()
                if s > 0:
                    enc.add(SerializedPooling(enc_channels[s - 1], enc_channels[s], stride[s - 1], bn_layer, act_layer,
                                              shuffle_orders), name="down")
                for i in range(enc_depths[s]):
                    enc.add(block(enc_channels[s], enc_num_head[s], enc_patch_size[s], stage_paths[i], i, s),
                            name=f"block{i}")
                self.enc.add(enc, name=f"enc{s}")
            paths = [x.item() for x in torch.linspace(0, drop_path, sum(dec_depths))]
            self.dec = PointSequential()
            dec_channels = list(dec_channels) + [enc_channels[-1]]
            for s in reversed(range(num_stages - 1)):
                stage_paths = paths[sum(dec_depths[:s]):sum(dec_depths[:s + 1])]
                stage_paths.reverse()
                dec = PointSequential()
                dec.add(SerializedUnpooling(dec_channels[s + 1], enc_channels[s], dec_channels[s], bn_layer, act_layer),
                        name="up")
                for i in range(dec_depths[s]):
                    dec.add(block(dec_channels[s], dec_num_head[s], dec_patch_size[s], stage_paths[i], i, s),
                            name=f"block{i}")
                self.dec.add(dec, name=f"dec{s}")

        def forward(self, data_dict):
            point = Point(data_dict)
            point.offset = _offset(point.batch)
            serialization(point, self.order, self.shuffle_orders)
            sparsify(point)
            point = self.embedding.stem(point)
            return self.dec(self.enc(point))

    class Segmentor(nn.Module):  # DefaultSegmentorV2, without its criteria
        def __init__(self):
            super().__init__()
            self.backbone = PointTransformerV3(**backbone_kwargs)
            self.seg_head = nn.Linear(backbone_kwargs.get("dec_channels", (64,))[0], num_classes)

        def forward(self, data_dict):
            return self.seg_head(self.backbone(dict(data_dict)).feat)

    return Segmentor()


def point_dict(features: torch.Tensor, indices: torch.Tensor, condition: str | None = None,
               context: torch.Tensor | None = None) -> dict:
    """The reference's input for a ppt ``SparseTensor``'s ``features`` and ``indices`` [b, x, y, z]."""
    data = dict(feat=features, grid_coord=indices[:, 1:].long(), batch=indices[:, 0].long())
    if condition is not None:
        data["condition"] = [condition]
    if context is not None:
        data["context"] = context
    return data


def default_backbone(**overrides) -> dict:
    """Pointcept's ScanNet PTv3 config (``semseg-pt-v3m1-0-base``) as reference kwargs, with the
    non-flash attention this reference runs."""
    kwargs = dict(in_channels=6, order=("z", "z-trans", "hilbert", "hilbert-trans"), stride=(2, 2, 2, 2),
                  enc_depths=(2, 2, 2, 6, 2), enc_channels=(32, 64, 128, 256, 512), enc_num_head=(2, 4, 8, 16, 32),
                  enc_patch_size=(1024,) * 5, dec_depths=(2, 2, 2, 2), dec_channels=(64, 64, 128, 256),
                  dec_num_head=(4, 4, 8, 16), dec_patch_size=(1024,) * 4)
    kwargs.update(overrides)
    return kwargs

