"""The paper's AlexNet (section 3) and its controls, as one package: build_model is the
factory, layer_table and count_params describe a built net."""

from harness.model.alexnet import (
                                   PAPER_CONV_CHANNELS,
                                   PAPER_FC_WIDTH,
                                   TORCHVISION_CONV_CHANNELS,
                                   AlexNet,
                                   conv_channels,
                                   fc_width,
                                   init_weights,
)
from harness.model.build import build_model
from harness.model.controls import torchvision_alexnet
from harness.model.cuda_convnet import NETS as CUDA_CONVNET_NETS
from harness.model.cuda_convnet import CudaConvNet, LocallyConnected2d, is_cuda_convnet
from harness.model.layers import LRN_CONVENTIONS, TowerLRN
from harness.model.table import LayerInfo, count_params, layer_table
from harness.model.two_device import TOWER_LAYERS, Tower, TwoDeviceAlexNet, gather, merge_towers, split_towers

__all__ = ["PAPER_CONV_CHANNELS", "PAPER_FC_WIDTH", "TORCHVISION_CONV_CHANNELS", "AlexNet",
           "conv_channels", "fc_width", "init_weights", "build_model", "torchvision_alexnet",
           "CUDA_CONVNET_NETS", "CudaConvNet", "LocallyConnected2d", "is_cuda_convnet",
           "LRN_CONVENTIONS", "TowerLRN", "LayerInfo", "count_params", "layer_table",
           "TOWER_LAYERS", "Tower", "TwoDeviceAlexNet", "gather", "merge_towers", "split_towers"]
