"""Models: Point-MAE and DAPT (object classification and pre-training), the PEFT baselines."""

from ppt.models.dapt import DAPT
from ppt.models.object_classifier import create_object_classifier
from ppt.models.official_weights import OfficialWeightsReport, load_official_weights
from ppt.models.peft import PEFT_METHODS, ParameterCount, count_parameters
from ppt.models.point_mae import PointMAE, PointMAEPretraining, chamfer_l2

__all__ = [
    "PointMAE", "PointMAEPretraining", "chamfer_l2", "DAPT", "create_object_classifier",
    "PEFT_METHODS", "ParameterCount", "count_parameters", "load_official_weights", "OfficialWeightsReport",
]
