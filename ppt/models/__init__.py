"""Models of ppt (SpUNet, Point Transformer V3; Point-MAE, DAPT and the PEFT baselines; PointMLP; UniPre3D) and loaders for checkpoints of
this package and of the original code."""

from ppt.models.dapt import DAPT
from ppt.models.object_classifier import create_object_classifier
from ppt.models.official_weights import OfficialWeightsReport, load_official_weights
from ppt.models.peft import PEFT_METHODS, ParameterCount, count_parameters
from ppt.models.point_mae import PointMAE, PointMAEPretraining, chamfer_l2
from ppt.models.point_mae_partseg import PointMAEPartSeg
from ppt.models.pointmlp import PointMLP, PointMLPPartSeg, pointmlp_elite
from ppt.models.point_transformer_v3 import PointTransformerV3
from ppt.models.point_prompt_training import PointPromptTraining, restricted_cross_entropy
from ppt.models.spunet import SpUNet
from ppt.models.unipre3d import GaussianHead, Gaussians, UniPre3D, UniPre3DPointMLP, weighted_l2_loss
from ppt.models.unipre3d_scene import UniPre3DScene
from ppt.models.weights import LoadReport, load_weights

__all__ = [
    "SpUNet", "PointTransformerV3", "load_weights", "LoadReport", "PointPromptTraining", "restricted_cross_entropy",
    "PointMAE", "PointMAEPretraining", "chamfer_l2", "PointMAEPartSeg", "DAPT", "create_object_classifier",
    "UniPre3D", "UniPre3DPointMLP", "UniPre3DScene", "GaussianHead", "Gaussians", "weighted_l2_loss",
    "PointMLP", "pointmlp_elite", "PointMLPPartSeg",
    "PEFT_METHODS", "ParameterCount", "count_parameters", "load_official_weights", "OfficialWeightsReport",
]
